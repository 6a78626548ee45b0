"""OpenTelemetry tracing: one trace per run, off unless configured.

Span tree of a run (all in the trace started by the submit)::

    treadle.run.submit            (API / CLI / SDK call that created the run)
    ├── treadle.task.dispatch     (coordinator queued a task)
    ├── treadle.task.attempt      (worker ran one attempt; HTTP tasks and handlers inside it)
    └── treadle.run.complete      (coordinator saw the run finish)

The store and the broker sit between these roles, so the submit span's W3C ``traceparent`` is
kept in the run's labels (:data:`TRACEPARENT_LABEL`) and every later span names it as parent.

The ``opentelemetry`` packages are optional (``pip install 'treadle[otel]'``). Without them, or
with ``tracing: none`` (the default), every function here is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from treadle.errors import ConfigError
from treadle.store.records import RunRecord, TaskRecord

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

log = logging.getLogger(__name__)

TRACEPARENT_LABEL = "treadle.traceparent"
MODES = ("none", "otlp", "console")
INSTRUMENTATION = "treadle"

_tracer: Tracer | None = None
_provider: Any = None  # the SDK provider we made (flushed on shutdown), if any


def enabled() -> bool:
    """Whether spans are being recorded in this process."""
    return _tracer is not None


def configure(mode: str) -> None:
    """Turn tracing on for this process (``otlp`` or ``console``) or leave it off (``none``).

    The exporter and resource follow the standard ``OTEL_*`` variables (``OTEL_SERVICE_NAME``,
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...); ``OTEL_SDK_DISABLED=true`` keeps tracing off.
    Calling it again once tracing is on changes nothing (one provider per process).
    """
    mode = (mode or "none").strip().lower()
    if mode not in MODES:
        raise ConfigError(f"bad tracing mode {mode!r}: use one of {', '.join(MODES)}")
    if mode == "none" or enabled():
        return
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        log.info("tracing: OTEL_SDK_DISABLED=true, no spans are recorded")
        return
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"tracing {mode!r} needs OpenTelemetry ({exc.name or exc}): pip install 'treadle[otel]'"
        ) from exc
    exporter = _exporter(mode)
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "treadle"}
    provider = SdkProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    # Global, so spans that user handlers start land in the same pipeline and trace.
    trace.set_tracer_provider(provider)
    use_provider(provider)
    global _provider
    _provider = provider
    log.info("tracing on: exporting spans with %s", mode)


def _exporter(mode: str) -> Any:
    if mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise ConfigError(
            "tracing 'otlp' needs opentelemetry-exporter-otlp-proto-http: "
            "pip install 'treadle[otel]'"
        ) from exc
    return OTLPSpanExporter()


def use_provider(provider: TracerProvider | None) -> None:
    """Record spans with ``provider`` (None turns tracing off). Tests pass an SDK provider."""
    global _tracer
    _tracer = provider.get_tracer(INSTRUMENTATION) if provider is not None else None


def shutdown() -> None:
    """Flush spans still buffered by the provider :func:`configure` made."""
    if _provider is not None:
        try:
            _provider.force_flush()
        except Exception as exc:  # an unreachable collector must not block a shutdown
            log.warning("tracing: flushing spans failed: %s", exc)


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    parent: str | None = None,
) -> Iterator[Span | None]:
    """A current span named ``name`` (None when tracing is off).

    ``parent`` is a W3C ``traceparent``: the span joins that trace; without it the span is a
    child of whatever span is current.
    """
    tracer = _tracer
    if tracer is None:
        yield None
        return
    context = _extract(parent) if parent else None
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    with tracer.start_as_current_span(name, context=context, attributes=attrs) as current:
        yield current


def _extract(traceparent: str) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def current_headers() -> dict[str, str]:
    """W3C trace context headers of the current span (empty when tracing is off)."""
    if _tracer is None:
        return {}
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier


def current_traceparent() -> str | None:
    """The current span's ``traceparent`` (None when tracing is off or no span is current)."""
    return current_headers().get("traceparent")


def set_error(current: Span | None, message: str) -> None:
    """Mark ``current`` as failed with ``message`` (no-op without a span)."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    current.set_status(Status(StatusCode.ERROR, message))


def run_traceparent(labels: Mapping[str, Any] | None) -> str | None:
    """The submit span's ``traceparent`` kept in a run's labels, if any."""
    value = (labels or {}).get(TRACEPARENT_LABEL)
    return value if isinstance(value, str) and value else None


def record_dispatch(run: RunRecord, tasks: Sequence[TaskRecord]) -> None:
    """One short ``treadle.task.dispatch`` span per task the coordinator just queued."""
    if _tracer is None or not tasks:
        return
    parent = run_traceparent(run.labels)
    for task in tasks:
        attributes = {
            "treadle.run_id": run.id,
            "treadle.task_id": task.id,
            "treadle.task": task.name,
            "treadle.queue": task.queue,
        }
        with span("treadle.task.dispatch", attributes, parent):
            pass


def record_completion(run: RunRecord) -> None:
    """A ``treadle.run.complete`` span when the coordinator sees ``run`` finish."""
    if _tracer is None:
        return
    attributes = {"treadle.run_id": run.id, "treadle.status": run.status}
    with span("treadle.run.complete", attributes, run_traceparent(run.labels)) as current:
        if run.status != "completed":
            set_error(current, run.error or run.status)


def add_trace_headers(headers: dict[str, str], trace_headers: Mapping[str, str]) -> None:
    """Put the attempt's trace context on an outgoing request (headers the task sets win)."""
    present = {name.lower() for name in headers}
    for name, value in trace_headers.items():
        if name.lower() not in present:
            headers[name] = value
