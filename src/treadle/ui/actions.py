"""Control buttons: which operations a run, layer or task offers, and the route that applies one.

The buttons post here with the etag the page was drawn with; this route forwards the operation
to the control API (``POST /api/v1/{runs|layers|tasks}/{id}/{op}`` with ``If-Match``). When
the etag is stale the API answers 409 and the page says that the thing changed meanwhile and
asks for a reload, so nobody acts on a picture that is out of date.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from treadle.errors import TreadleError
from treadle.ui.api_client import ApiAnswer, call_api
from treadle.ui.auth import require_login, safe_next
from treadle.ui.web import UIRoute, is_htmx, render, service_of

OPERATIONS = ("pause", "unpause", "kill", "retry", "skip", "rerun")
_OPEN_RUN = {"pending", "running", "paused"}
_OPEN_TASK = {"pending", "queued", "running", "paused"}
_ENDED = {"completed", "failed", "cancelled", "skipped"}

#: When each operation applies (the API decides; this only hides buttons that cannot work).
ALLOWED: dict[str, dict[str, set[str]]] = {
    "run": {
        "pause": {"pending", "running"},
        "unpause": {"paused"},
        "kill": _OPEN_RUN,
        "retry": {"failed", "cancelled"},
        "skip": _OPEN_RUN | {"failed", "cancelled"},
        "rerun": _ENDED,
    },
    "layer": {
        "pause": {"pending", "running"},
        "unpause": {"paused"},
        "kill": {"pending", "running", "paused"},
        "retry": {"failed", "cancelled"},
        "skip": {"pending", "running", "paused", "failed", "cancelled"},
        "rerun": _ENDED,
    },
    "task": {
        "pause": {"pending", "queued"},
        "unpause": {"paused"},
        "kill": _OPEN_TASK,
        "retry": {"failed", "cancelled"},
        "skip": _OPEN_TASK | {"failed", "cancelled"},
        "rerun": _ENDED,
    },
}
LABELS = {
    "pause": "Pause",
    "unpause": "Unpause",
    "kill": "Kill",
    "retry": "Retry",
    "skip": "Skip",
    "rerun": "Rerun",
}
#: Operations that ask for confirmation first (they stop or throw away work).
CONFIRM = {"kill", "skip", "rerun"}
_PLURAL = {"run": "runs", "layer": "layers", "task": "tasks"}


@dataclass(frozen=True, slots=True)
class Button:
    op: str
    label: str
    confirm: bool


def buttons(kind: str, status: str) -> list[Button]:
    """The operations to offer on a ``kind`` in ``status``."""
    table = ALLOWED.get(kind, {})
    return [Button(op, LABELS[op], op in CONFIRM) for op in OPERATIONS if status in table[op]]


router = APIRouter(route_class=UIRoute, dependencies=[Depends(require_login)])


_DONE = {
    "pause": "Paused",
    "unpause": "Unpaused",
    "kill": "Killed",
    "retry": "Retrying",
    "skip": "Skipped",
    "rerun": "Rerunning",
}


async def _current_etag(request: Request, kind: str, target: str) -> str | None:
    """The target's etag now (None when it cannot be read)."""
    store = service_of(request).store
    try:
        if kind == "run":
            return str((await store.get_run(target)).version)
        if kind == "task":
            return str((await store.get_task(target)).version)
        return str((await store.get_layer(target)).version)
    except TreadleError:
        return None


def _message(kind: str, label: str, op: str, answer: ApiAnswer, stale: bool) -> tuple[str, str]:
    """(flash kind, text) for the API's answer; ``stale``: the page's etag is out of date."""
    if answer.ok:
        return "ok", f"{_DONE[op]} {kind} {label}."
    if answer.status == 409 and (answer.error_code == "conflict" or stale):
        # A stale etag, or a state that moved on since the page was drawn: either way the
        # operator decided on an old picture.
        why = "" if answer.error_code == "conflict" else f" ({answer.error_message})"
        return "warn", (
            f"This {kind} changed meanwhile{why}, so nothing was done. Reload the page to see "
            "its current state, then try again."
        )
    if answer.status == 404 and answer.error_message.startswith("no route"):
        return "error", f"This server does not offer “{op}” on {_PLURAL[kind]} yet."
    return "error", f"Could not {op} {kind} {label}: {answer.error_message}"


async def _apply(
    request: Request, kind: str, target: str, op: str, etag: str
) -> tuple[str, ApiAnswer]:
    headers = {"If-Match": f'"{etag}"'} if etag else {}
    path = f"/api/v1/{_PLURAL[kind]}/{target}/{op}"
    answer = await call_api(request, "POST", path, headers=headers)
    if (
        kind == "run"
        and op == "kill"
        and answer.status == 404
        and answer.error_message.startswith("no route")
    ):
        # Servers without the control API still cancel runs.
        answer = await call_api(request, "POST", f"/api/v1/runs/{target}/cancel", headers=headers)
    return path, answer


@router.post("/ui/act", response_class=HTMLResponse, include_in_schema=False)
async def act(
    request: Request,
    kind: str = Form(...),
    target: str = Form(..., alias="id"),
    op: str = Form(...),
    etag: str = Form(""),
    label: str = Form(""),
    back: str = Form("/"),
) -> HTMLResponse:
    back = safe_next(back)
    if kind not in _PLURAL or op not in OPERATIONS:
        flash, text = "error", f"Unknown operation {op!r} on {kind!r}."
        status = 422
    else:
        _, answer = await _apply(request, kind, target, op, etag)
        stale = False
        if answer.status == 409 and etag:
            stale = await _current_etag(request, kind, target) not in (None, etag.strip('"'))
        flash, text = _message(kind, label or target, op, answer, stale)
        status = 200 if answer.ok else answer.status
    context: dict[str, Any] = {"kind": flash, "message": text, "reload": back}
    if is_htmx(request):
        response = render(request, "_flash.html", status_code=status, **context)
        if flash == "ok":
            response.headers["HX-Trigger"] = "treadle-changed"
        return response
    return render(request, "message.html", status_code=status, title="Control", **context)
