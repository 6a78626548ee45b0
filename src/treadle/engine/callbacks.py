"""``on_success`` / ``on_failure`` callbacks: POST the run summary when a run ends.

When the coordinator finishes a run it writes one outbox row per callback URL (ids derived from
the run, so writing twice is harmless). A sender on the coordinator's timer loop claims due rows
with a compare-and-set and delivers them in background tasks, so a slow endpoint never blocks
the coordinator. Failures are retried with growing delays, then marked ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from datetime import timedelta
from typing import Any

import httpx

from treadle.engine.hooks import SIGNATURE_HEADER, sign
from treadle.model.states import RunStatus
from treadle.model.triggers import CallbackSpec, as_callbacks
from treadle.runtime.http_guard import AddressRefused, GuardedTransport
from treadle.store.base import Store
from treadle.store.records import RunRecord
from treadle.store.trigger_records import CallbackRecord

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("0c7e4d8a-3b61-4a9e-8f1d-5a2c6e9b7d34")


def run_payload(run: RunRecord, event: str) -> dict[str, Any]:
    """The JSON body of a callback: the run summary plus the event name."""

    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "event": event,
        "id": run.id,
        "definition": run.definition_name,
        "version": run.definition_version,
        "status": run.status,
        "inputs": run.inputs,
        "output": run.output,
        "error": run.error,
        "labels": run.labels,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
    }


def callbacks_for(run: RunRecord) -> list[CallbackRecord]:
    """Outbox rows for a finished run (none while it is unfinished)."""
    status = RunStatus(run.status)
    if not status.terminal:
        return []
    field = "on_success" if status == RunStatus.COMPLETED else "on_failure"
    raw = run.definition.get(field)
    if not raw:
        return []
    specs = as_callbacks(
        [CallbackSpec.model_validate(r) for r in raw]
        if isinstance(raw, list)
        else CallbackSpec.model_validate(raw)
    )
    event = f"run.{run.status}"
    at = run.finished_at or run.created_at
    return [
        CallbackRecord(
            id=str(uuid.uuid5(_NAMESPACE, f"{run.id}|{event}|{i}|{spec.url}")),
            run_id=run.id,
            event=event,
            url=spec.url,
            headers=dict(spec.headers),
            secret_env=spec.secret_env,
            payload=run_payload(run, event),
            created_at=at,
            next_at=at,
        )
        for i, spec in enumerate(specs)
    ]


class CallbackSender:
    """Delivers due callbacks in the background (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        delays: tuple[float, ...] = (1.0, 5.0, 30.0, 120.0, 600.0),
        timeout: float = 10.0,
        max_in_flight: int = 50,
    ) -> None:
        self.store = store
        self.delays = delays
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_in_flight)
        self._jobs: set[asyncio.Task[None]] = set()

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    async def enqueue(self, run: RunRecord) -> int:
        rows = callbacks_for(run)
        if rows:
            await self.store.add_callbacks(rows)
        return len(rows)

    async def tick(self) -> int:
        """Claim due callbacks and start delivering them; return how many were started."""
        now = await self.store.now()
        started = 0
        for row in await self.store.due_callbacks(now):
            if self._slots.locked():
                break
            # The claim pushes next_at past the request's timeout, so nobody else sends it.
            claimed = await self.store.update_callback(
                row.id,
                row.version,
                {
                    "attempts": row.attempts + 1,
                    "next_at": now + timedelta(seconds=self.timeout * 3),
                },
            )
            if claimed is None:
                continue
            await self._slots.acquire()
            job = asyncio.create_task(self._deliver(claimed), name=f"callback-{row.id}")
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)
            started += 1
        return started

    async def _deliver(self, row: CallbackRecord) -> None:
        try:
            error = await self._post(row)
            now = await self.store.now()
            if error is None:
                values: dict[str, Any] = {"status": "delivered", "last_error": None}
            elif row.attempts >= self.max_attempts:
                values = {"status": "failed", "last_error": error}
                log.warning("callback %s to %s gave up: %s", row.id, row.url, error)
            else:
                delay = self.delays[min(row.attempts - 1, len(self.delays) - 1)]
                values = {"next_at": now + timedelta(seconds=delay), "last_error": error}
            await self.store.update_callback(row.id, row.version, values)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the claim expires and the row is tried again
            log.warning("callback %s: %s", row.id, exc)
        finally:
            self._slots.release()

    async def _post(self, row: CallbackRecord) -> str | None:
        body = json.dumps(row.payload).encode()
        headers = {"Content-Type": "application/json", "X-Treadle-Event": row.event}
        headers.update(row.headers)
        if row.secret_env:
            secret = os.environ.get(row.secret_env)
            if not secret:
                return f"${row.secret_env} is not set on the coordinator; cannot sign"
            headers[SIGNATURE_HEADER] = sign(secret, body)
        try:
            # The same address check as HTTP tasks: no link-local / metadata targets.
            async with httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, transport=GuardedTransport()
            ) as client:
                response = await client.post(row.url, content=body, headers=headers)
        except AddressRefused as exc:
            return str(exc)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def stop(self) -> None:
        for job in list(self._jobs):
            job.cancel()
        for job in list(self._jobs):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await job
