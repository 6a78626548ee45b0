"""The blocking client: ``treadle.Client(url, token=None)``.

>>> with treadle.Client("http://127.0.0.1:8765") as client:   # doctest: +SKIP
...     client.definitions.create(open("nightly.yaml").read())
...     run = client.runs.create(definition="nightly-report", inputs={"day": "mon"})
...     run = client.runs.wait(run.id, timeout=60)
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload

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


class Client:
    """A blocking client of the treadle v1 API (httpx underneath)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = base_url(url)
        self._http = httpx.Client(
            base_url=self.url,
            headers=default_headers(token),
            timeout=timeout,
            transport=transport,
        )
        self.definitions = Definitions(self)
        self.runs = Runs(self)
        self.layers = Controls(self, "layers")
        self.tasks = Controls(self, "tasks")
        self.schedules = Schedules(self)
        self.workers = Workers(self)

    def call(self, call: Call[T]) -> T:
        """Send one request and parse its answer (errors raise :class:`ApiError`)."""
        try:
            response = self._http.request(
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

    def bulk(self, op: str, items: Sequence[Any]) -> int:
        """Apply ``op`` to many runs/layers/tasks at once; returns how many were applied."""
        return self.call(calls.bulk(op, items))

    def health(self) -> dict[str, Any]:
        """``/healthz`` (the process is up)."""
        return self.call(calls.health())

    def ready(self) -> dict[str, Any]:
        """``/readyz`` (store and broker answer); raises :class:`Unavailable` otherwise."""
        return self.call(calls.ready())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Definitions:
    """``client.definitions``: store and read definitions."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(self, doc: Any, *, dialect: str | None = None) -> DefinitionRef:
        """Store a definition: a dict, YAML/JSON text, a Path or a code-first workflow."""
        return self._c.call(calls.create_definition(doc, dialect))

    def get(self, name: str, version: int | None = None) -> Definition:
        return self._c.call(calls.get_definition(name, version))

    def list(self) -> Page[Definition]:
        return self._c.call(calls.list_definitions())

    def schema(self) -> dict[str, Any]:
        """The JSON Schema of native definitions."""
        return self._c.call(calls.definition_schema())


class Controls:
    """Control operations on one kind of object: runs, layers or tasks."""

    def __init__(self, client: Client, target: calls.Target) -> None:
        self._c = client
        self._target: calls.Target = target

    def _op(self, obj: Any, op: str, etag: str | int | None) -> Any:
        return self._c.call(calls.control(self._target, obj, op, etag))

    def pause(self, obj: Any, etag: str | int | None = None) -> Any:
        """Pause; ``obj`` is an id or a value with ``.id``/``.etag`` (sent as If-Match)."""
        return self._op(obj, "pause", etag)

    def unpause(self, obj: Any, etag: str | int | None = None) -> Any:
        return self._op(obj, "unpause", etag)

    def kill(self, obj: Any, etag: str | int | None = None) -> Any:
        """Stop running processes and cancel what has not started."""
        return self._op(obj, "kill", etag)

    def retry(self, obj: Any, etag: str | int | None = None) -> Any:
        """Run a failed, killed or cancelled one again."""
        return self._op(obj, "retry", etag)

    def skip(self, obj: Any, etag: str | int | None = None) -> Any:
        """Count as done for what follows."""
        return self._op(obj, "skip", etag)

    def rerun(self, obj: Any, etag: str | int | None = None) -> Any:
        """Reset this and everything downstream, keeping upstream outputs."""
        return self._op(obj, "rerun", etag)


class Runs(Controls):
    """``client.runs``: start, inspect, wait for, steer runs; task logs and signals."""

    def __init__(self, client: Client) -> None:
        super().__init__(client, "runs")

    def create(
        self,
        definition: Any,
        inputs: Mapping[str, Any] | None = None,
        *,
        version: int | None = None,
        labels: Mapping[str, Any] | None = None,
    ) -> Run:
        """Start a run of a stored definition (by name) or of an inline document/workflow."""
        return self._c.call(calls.create_run(definition, inputs, version, labels))

    def get(self, run: Any) -> Run:
        return self._c.call(calls.get_run(run))

    def list(
        self,
        *,
        status: str | None = None,
        definition: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Run]:
        """One page of runs, newest first (tasks not included)."""
        return self._c.call(calls.list_runs(status, definition, limit, cursor))

    def iter(self, *, status: str | None = None, definition: str | None = None) -> Iterator[Run]:
        """Every matching run, page after page."""
        cursor: str | None = None
        while True:
            page = self.list(status=status, definition=definition, limit=200, cursor=cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def wait(self, run: Any, timeout: float | None = None) -> Run:
        """Poll until the run is completed, failed or cancelled; WaitTimeout after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.1
        while True:
            current = self.get(run)
            if current.done:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"run {current.id} is still {current.status} after {timeout}s")
            pause = delay if deadline is None else min(delay, max(0.0, deadline - time.monotonic()))
            time.sleep(pause)
            delay = next_delay(delay)

    def events(self, run: Any) -> builtins.list[Event]:
        return self._c.call(calls.run_events(run))

    def cancel(self, run: Any, etag: str | int | None = None) -> Run:
        return self._c.call(calls.cancel_run(run, etag))

    def signal(self, run: Any, name: str, payload: Any = None) -> Any:
        """Deliver the named signal to a run waiting for it; ``payload`` becomes its output."""
        return self._c.call(calls.signal(run, name, payload))

    @overload
    def logs(self, run: Any, task: str, *, follow: Literal[False] = False) -> str: ...

    @overload
    def logs(self, run: Any, task: str, *, follow: Literal[True]) -> Iterator[str]: ...

    def logs(self, run: Any, task: str, *, follow: bool = False) -> str | Iterator[str]:
        """A task's log text; with ``follow=True`` an iterator of text until the task ends."""
        if follow:
            return self._follow(run, task)
        text = self._c.call(Call("GET", calls.logs_path(run, task), lambda d: d or ""))
        return str(text)

    def _follow(self, run: Any, task: str) -> Iterator[str]:
        http = self._c._http
        try:
            with http.stream(
                "GET", calls.logs_path(run, task), params={"follow": "true"}, timeout=None
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_from_response(response)
                yield from response.iter_text()
        except httpx.TransportError as exc:
            raise unreachable(self._c.url, exc) from exc


class Schedules:
    """``client.schedules``: cron schedules that start runs."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def create(self, definition: str, cron: str, **options: Any) -> Schedule:
        """Options: inputs, timezone, name, overlap (skip|queue|allow), catchup, paused."""
        return self._c.call(calls.create_schedule(definition, cron, **options))

    def list(self) -> Page[Schedule]:
        return self._c.call(calls.list_schedules())

    def get(self, schedule_id: str) -> Schedule:
        return self._c.call(calls.get_schedule(schedule_id))

    def delete(self, schedule_id: str) -> None:
        self._c.call(calls.delete_schedule(schedule_id))


class Workers:
    """``client.workers``: the worker registry."""

    def __init__(self, client: Client) -> None:
        self._c = client

    def list(self) -> builtins.list[Worker]:
        return self._c.call(calls.list_workers())
