"""The asyncio client: ``treadle.AsyncClient``, the same surface as :class:`~treadle.Client`."""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx

from treadle.sdk import calls
from treadle.sdk.calls import Call
from treadle.sdk.errors import WaitTimeout, error_from_response, unreachable
from treadle.sdk.models import (
    Definition,
    DefinitionRef,
    Event,
    Page,
    Run,
    Schedule,
    Worker,
)
from treadle.sdk.transport import base_url, decode, default_headers, next_delay

T = TypeVar("T")


class AsyncClient:
    """An asyncio client of the treadle v1 API; use ``async with`` or ``await aclose()``."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = base_url(url)
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=default_headers(token),
            timeout=timeout,
            transport=transport,
        )
        self.definitions = AsyncDefinitions(self)
        self.runs = AsyncRuns(self)
        self.layers = AsyncControls(self, "layers")
        self.tasks = AsyncControls(self, "tasks")
        self.schedules = AsyncSchedules(self)
        self.workers = AsyncWorkers(self)

    async def call(self, call: Call[T]) -> T:
        """Send one request and parse its answer (errors raise :class:`ApiError`)."""
        try:
            response = await self._http.request(
                call.method,
                call.path,
                params=dict(call.params),
                json=call.json,
                content=call.content,
                headers=dict(call.headers),
            )
        except httpx.TransportError as exc:
            raise unreachable(self.url, exc) from exc
        return call.parse(decode(response))

    async def bulk(self, op: str, items: Sequence[Any]) -> int:
        return await self.call(calls.bulk(op, items))

    async def health(self) -> dict[str, Any]:
        return await self.call(calls.health())

    async def ready(self) -> dict[str, Any]:
        return await self.call(calls.ready())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class AsyncDefinitions:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(self, doc: Any, *, dialect: str | None = None) -> DefinitionRef:
        """Store a definition: a dict, YAML/JSON text, a Path or a code-first workflow."""
        return await self._c.call(calls.create_definition(doc, dialect))

    async def get(self, name: str, version: int | None = None) -> Definition:
        return await self._c.call(calls.get_definition(name, version))

    async def list(self) -> Page[Definition]:
        return await self._c.call(calls.list_definitions())

    async def schema(self) -> dict[str, Any]:
        return await self._c.call(calls.definition_schema())


class AsyncControls:
    """Control operations on runs, layers or tasks (``If-Match`` from ``etag`` or ``obj.etag``)."""

    def __init__(self, client: AsyncClient, target: calls.Target) -> None:
        self._c = client
        self._target: calls.Target = target

    async def _op(self, obj: Any, op: str, etag: str | int | None) -> Any:
        return await self._c.call(calls.control(self._target, obj, op, etag))

    async def pause(self, obj: Any, etag: str | int | None = None) -> Any:
        return await self._op(obj, "pause", etag)

    async def unpause(self, obj: Any, etag: str | int | None = None) -> Any:
        return await self._op(obj, "unpause", etag)

    async def kill(self, obj: Any, etag: str | int | None = None) -> Any:
        return await self._op(obj, "kill", etag)

    async def retry(self, obj: Any, etag: str | int | None = None) -> Any:
        return await self._op(obj, "retry", etag)

    async def skip(self, obj: Any, etag: str | int | None = None) -> Any:
        return await self._op(obj, "skip", etag)

    async def rerun(self, obj: Any, etag: str | int | None = None) -> Any:
        return await self._op(obj, "rerun", etag)


class AsyncRuns(AsyncControls):
    def __init__(self, client: AsyncClient) -> None:
        super().__init__(client, "runs")

    async def create(
        self,
        definition: Any,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        labels: Mapping[str, Any] | None = None,
    ) -> Run:
        return await self._c.call(calls.create_run(definition, inputs, version, labels))

    async def get(self, run: Any) -> Run:
        return await self._c.call(calls.get_run(run))

    async def list(
        self,
        *,
        status: str | None = None,
        definition: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Run]:
        return await self._c.call(calls.list_runs(status, definition, limit, cursor))

    async def wait(self, run: Any, timeout: float | None = None) -> Run:
        """Poll until the run is terminal; :class:`WaitTimeout` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.1
        while True:
            current = await self.get(run)
            if current.done:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"run {current.id} is still {current.status} after {timeout}s")
            pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            await asyncio.sleep(pause)
            delay = next_delay(delay)

    async def events(self, run: Any) -> builtins.list[Event]:
        return await self._c.call(calls.run_events(run))

    async def cancel(self, run: Any, etag: str | int | None = None) -> Run:
        return await self._c.call(calls.cancel_run(run, etag))

    async def signal(self, run: Any, name: str, payload: Any = None) -> Any:
        return await self._c.call(calls.signal(run, name, payload))

    async def logs(self, run: Any, task: str) -> str:
        """A task's log text so far (see :meth:`follow_logs` to stream it)."""
        text = await self._c.call(Call("GET", calls.logs_path(run, task), lambda d: d or ""))
        return str(text)

    async def follow_logs(self, run: Any, task: str) -> AsyncIterator[str]:
        """Yield a task's log text as it is written, until the task ends."""
        try:
            async with self._c._http.stream(
                "GET", calls.logs_path(run, task), params={"follow": "true"}, timeout=None
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_from_response(response)
                async for chunk in response.aiter_text():
                    yield chunk
        except httpx.TransportError as exc:
            raise unreachable(self._c.url, exc) from exc


class AsyncSchedules:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def create(self, definition: str, cron: str, **options: Any) -> Schedule:
        return await self._c.call(calls.create_schedule(definition, cron, **options))

    async def list(self) -> Page[Schedule]:
        return await self._c.call(calls.list_schedules())

    async def get(self, schedule_id: str) -> Schedule:
        return await self._c.call(calls.get_schedule(schedule_id))

    async def delete(self, schedule_id: str) -> None:
        await self._c.call(calls.delete_schedule(schedule_id))


class AsyncWorkers:
    def __init__(self, client: AsyncClient) -> None:
        self._c = client

    async def list(self) -> builtins.list[Worker]:
        return await self._c.call(calls.list_workers())
