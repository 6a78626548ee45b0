"""The runs list: a live table with filters, id search and cursor pagination."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from treadle.model.states import RunStatus
from treadle.ui.auth import require_login
from treadle.ui.data import run_rows
from treadle.ui.web import UIRoute, render, service_of

router = APIRouter(route_class=UIRoute, dependencies=[Depends(require_login)])

SINCE = {
    "15m": ("last 15 minutes", timedelta(minutes=15)),
    "1h": ("last hour", timedelta(hours=1)),
    "24h": ("last 24 hours", timedelta(days=1)),
    "7d": ("last 7 days", timedelta(days=7)),
    "30d": ("last 30 days", timedelta(days=30)),
}
STATUSES = [s.value for s in RunStatus]
PAGE_SIZES = (25, 50, 100, 200)


@dataclass(frozen=True, slots=True)
class RunFilters:
    """The table's query, read leniently from the URL (bad values are reported, not fatal)."""

    status: str = ""
    definition: str = ""
    since: str = ""
    start: str = ""  # created at or after (ISO, UTC)
    end: str = ""  # created before (ISO, UTC)
    q: str = ""  # id prefix
    cursor: str = ""
    limit: int = 50

    @classmethod
    def from_request(cls, request: Request) -> tuple[RunFilters, list[str]]:
        p = request.query_params
        problems = []
        status = p.get("status", "")
        if status and status not in STATUSES:
            problems.append(f"unknown status {status!r}")
            status = ""
        since = p.get("since", "")
        if since and since not in SINCE:
            problems.append(f"unknown time range {since!r}")
            since = ""
        try:
            limit = int(p.get("limit", "50"))
        except ValueError:
            limit = 50
        return (
            cls(
                status=status,
                definition=p.get("definition", "").strip(),
                since=since,
                start=p.get("from", "").strip(),
                end=p.get("to", "").strip(),
                q=p.get("q", "").strip(),
                cursor=p.get("cursor", "").strip(),
                limit=min(max(limit, 1), PAGE_SIZES[-1]),
            ),
            problems,
        )

    def query(self, **override: str) -> str:
        """The URL query of these filters, with some values replaced."""
        values = {
            "status": self.status,
            "definition": self.definition,
            "since": self.since,
            "from": self.start,
            "to": self.end,
            "q": self.q,
            "cursor": self.cursor,
            "limit": "" if self.limit == 50 else str(self.limit),
        }
        values.update(override)
        return urlencode({k: v for k, v in values.items() if v})


def _when(text: str, what: str, problems: list[str]) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        problems.append(f"could not read the {what} time {text!r} (use 2025-01-31T14:00)")
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


async def _table_context(request: Request) -> dict[str, Any]:
    service = service_of(request)
    filters, problems = RunFilters.from_request(request)
    now = await service.store.now()
    after = _when(filters.start, "from", problems)
    before = _when(filters.end, "to", problems)
    if filters.since:
        floor = now - SINCE[filters.since][1]
        after = max(after, floor) if after else floor
    runs, next_cursor = await service.store.list_runs(
        status=filters.status or None,
        definition=filters.definition or None,
        limit=filters.limit,
        cursor=filters.cursor or None,
        created_after=after,
        created_before=before,
        id_prefix=filters.q or None,
    )
    return {
        "filters": filters,
        "rows": await run_rows(service.store, runs),
        "next_cursor": next_cursor,
        "problems": problems,
        "now": now,
    }


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
@router.get("/ui/runs", response_class=HTMLResponse, include_in_schema=False)
async def runs_page(request: Request) -> HTMLResponse:
    context = await _table_context(request)
    definitions = await service_of(request).store.list_definitions()
    return render(
        request,
        "runs.html",
        title="Runs",
        statuses=STATUSES,
        since_options=SINCE,
        page_sizes=PAGE_SIZES,
        definition_names=sorted({d.name for d in definitions}),
        **context,
    )


@router.get("/ui/runs/table", response_class=HTMLResponse, include_in_schema=False)
async def runs_table(request: Request) -> HTMLResponse:
    """The table alone: polled by the page and swapped in when a filter changes."""
    context = await _table_context(request)
    response = render(request, "_runs_table.html", **context)
    if request.headers.get("hx-trigger") == "run-filters":
        # A filter change: the address bar follows, so a reload or a shared link keeps it.
        query = context["filters"].query()
        response.headers["HX-Replace-Url"] = "/ui/runs" + (f"?{query}" if query else "")
    return response
