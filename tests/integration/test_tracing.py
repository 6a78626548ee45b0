"""OpenTelemetry spans of a run: submit -> dispatch -> attempt -> completion, one trace.

The SDK's in-memory exporter collects the spans the engine records; HTTP tasks must carry the
attempt's ``traceparent`` to a real local server, and handlers must see the attempt's span.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import treadle
from tests.conftest import EchoServer
from tests.integration.conftest import by_name, settings_for, wait_run
from treadle.engine.node import Node
from treadle.engine.service import EngineService
from treadle.observability import tracing
from treadle.worker.handlers import current_attempt, unregister

seen_by_probe: list[dict[str, Any]] = []


@treadle.handler("trace_probe")
def trace_probe() -> dict[str, Any]:
    """Report the span the handler runs under, as handler code would read it."""
    context = trace.get_current_span().get_span_context()
    seen = {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "attempt_trace_id": current_attempt().trace_id,
    }
    seen_by_probe.append(seen)
    return seen


@pytest.fixture(scope="module", autouse=True)
def _handler() -> Iterator[None]:
    yield
    unregister("trace_probe")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    try:
        yield exporter
    finally:
        tracing.use_provider(None)
        provider.shutdown()


@pytest.fixture
async def engine(store_url: str) -> AsyncIterator[EngineService]:
    node = Node(settings_for(store_url), ["coordinator", "worker"])
    svc = await node.start()
    try:
        yield svc
    finally:
        await node.stop()


def _hex(value: int, width: int) -> str:
    return format(value, f"0{width}x")


async def _finished(exporter: InMemorySpanExporter, name: str, count: int) -> list[ReadableSpan]:
    """Spans named ``name`` once ``count`` of them ended (the coordinator may lag the store)."""
    for _ in range(400):
        found = [s for s in exporter.get_finished_spans() if s.name == name]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(found)} {name} spans, wanted {count}")


async def test_a_run_is_one_trace_with_submit_dispatch_attempt_complete(
    engine: EngineService, spans: InMemorySpanExporter
) -> None:
    seen_by_probe.clear()
    definition = {
        "name": "traced",
        "tasks": [
            {"name": "probe", "kind": "python", "handler": "trace_probe"},
            {"name": "echo", "kind": "shell", "command": ["echo", "hi"]},
        ],
    }
    run = await engine.start_run(definition, {})
    assert (await wait_run(engine, run.id)).status == "completed"
    tasks = by_name(await engine.get_tasks(run.id))
    attempts = {a.task_id: a for a in await engine.get_attempts(run.id)}

    (submit,) = await _finished(spans, "treadle.run.submit", 1)
    dispatches = await _finished(spans, "treadle.task.dispatch", 2)
    attempt_spans = await _finished(spans, "treadle.task.attempt", 2)
    (complete,) = await _finished(spans, "treadle.run.complete", 1)

    assert submit.parent is None
    assert submit.attributes is not None and submit.attributes["treadle.run_id"] == run.id
    trace_id = submit.context.trace_id
    for span in [*dispatches, *attempt_spans, complete]:
        assert span.context.trace_id == trace_id, span.name
        assert span.parent is not None and span.parent.span_id == submit.context.span_id
        assert span.attributes is not None and span.attributes["treadle.run_id"] == run.id
    assert {s.attributes["treadle.task_id"] for s in dispatches if s.attributes} == {
        t.id for t in tasks.values()
    }
    by_task = {s.attributes["treadle.task_id"]: s for s in attempt_spans if s.attributes}
    assert set(by_task) == {t.id for t in tasks.values()}
    for task_id, span in by_task.items():
        assert span.attributes is not None
        assert span.attributes["treadle.attempt_id"] == attempts[task_id].id
    assert complete.attributes is not None and complete.attributes["treadle.status"] == "completed"
    # The run keeps the trace in its labels, so any role can join it.
    stored = await engine.get_run(run.id)
    stored_parent = tracing.run_traceparent(stored.labels) or ""
    assert stored_parent.split("-")[:3] == [
        "00",
        _hex(trace_id, 32),
        _hex(submit.context.span_id, 16),
    ]
    # The handler ran inside its attempt's span and sees the trace id.
    probe_span = by_task[tasks["probe"].id]
    assert seen_by_probe == [
        {
            "trace_id": _hex(trace_id, 32),
            "span_id": _hex(probe_span.context.span_id, 16),
            "attempt_trace_id": _hex(trace_id, 32),
        }
    ]


async def test_a_failed_attempt_span_is_marked_as_error(
    engine: EngineService, spans: InMemorySpanExporter
) -> None:
    definition = {
        "name": "traced-fail",
        "tasks": [{"name": "bad", "kind": "shell", "command": ["false"]}],
    }
    run = await engine.start_run(definition, {})
    assert (await wait_run(engine, run.id)).status == "failed"
    (attempt,) = await _finished(spans, "treadle.task.attempt", 1)
    (complete,) = await _finished(spans, "treadle.run.complete", 1)
    assert not attempt.status.is_ok
    assert not complete.status.is_ok


async def test_a_subworkflow_run_continues_its_parents_trace(
    engine: EngineService, spans: InMemorySpanExporter
) -> None:
    await engine.create_definition(
        {"name": "traced-child", "tasks": [{"name": "inner", "kind": "log", "message": "hi"}]}
    )
    doc = {
        "name": "traced-parent",
        "tasks": [{"name": "sub", "kind": "subworkflow", "definition": "traced-child"}],
    }
    run = await engine.start_run(doc, {})
    assert (await wait_run(engine, run.id)).status == "completed"
    submits = await _finished(spans, "treadle.run.submit", 2)
    (start,) = await _finished(spans, "treadle.subworkflow.start", 1)
    (parent_submit,) = [s for s in submits if s.parent is None]
    (child_submit,) = [s for s in submits if s.parent is not None]
    assert parent_submit.attributes is not None
    assert parent_submit.attributes["treadle.run_id"] == run.id
    assert child_submit.parent is not None and child_submit.parent.span_id == start.context.span_id
    assert start.context.trace_id == child_submit.context.trace_id == parent_submit.context.trace_id


async def test_http_tasks_send_the_attempt_traceparent(
    engine: EngineService, spans: InMemorySpanExporter, echo_server: EchoServer
) -> None:
    definition = {
        "name": "traced-http",
        "tasks": [{"name": "call", "kind": "http", "url": f"{echo_server.url}/hello"}],
    }
    run = await engine.start_run(definition, {})
    assert (await wait_run(engine, run.id)).status == "completed"
    (attempt,) = await _finished(spans, "treadle.task.attempt", 1)
    (request,) = echo_server.requests
    headers = {k.lower(): v for k, v in request["headers"].items()}
    version, trace_id, parent_id, _flags = headers["traceparent"].split("-")
    assert version == "00"
    assert trace_id == _hex(attempt.context.trace_id, 32)
    assert parent_id == _hex(attempt.context.span_id, 16)


async def test_tracing_off_records_nothing_and_sends_no_header(
    engine: EngineService, spans: InMemorySpanExporter, echo_server: EchoServer
) -> None:
    tracing.use_provider(None)  # on, then turned off again: the default state
    assert not tracing.enabled()
    definition = {
        "name": "untraced-http",
        "tasks": [{"name": "call", "kind": "http", "url": f"{echo_server.url}/plain"}],
    }
    run = await engine.start_run(definition, {})
    assert (await wait_run(engine, run.id)).status == "completed"
    (request,) = echo_server.requests
    assert "traceparent" not in {k.lower() for k in request["headers"]}
    assert request["headers"]["X-Treadle-Attempt-Id"]  # the request itself went out
    assert spans.get_finished_spans() == ()
    assert tracing.TRACEPARENT_LABEL not in (await engine.get_run(run.id)).labels
