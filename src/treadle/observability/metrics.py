"""Prometheus metrics: counters and histograms fed by the roles, gauges read from the store.

Counters live in one process-wide :data:`REGISTRY` (a worker's ``--metrics-port`` serves it).
State gauges (runs and tasks by state, queue depth) are refreshed from the store when the API's
``/metrics`` is scraped, so every API replica reports the same numbers.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)

ATTEMPTS = Counter(
    "treadle_attempts_total",
    "Attempts finished, by task kind and attempt outcome",
    ["kind", "outcome"],
    registry=REGISTRY,
)
TASK_DURATION = Histogram(
    "treadle_task_duration_seconds",
    "Duration of attempts, by task kind",
    ["kind"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "treadle_run_duration_seconds",
    "Duration of runs from start to their final state, by final state",
    ["state"],
    buckets=_DURATION_BUCKETS,
    registry=REGISTRY,
)
RETRIES = Counter(
    "treadle_retries_total", "Failed attempts that were scheduled again", registry=REGISTRY
)
LEASE_EXPIRIES = Counter(
    "treadle_lease_expiries_total",
    "Attempts whose lease passed (worker lost or stuck)",
    registry=REGISTRY,
)
BROKER_ERRORS = Counter(
    "treadle_broker_errors_total", "Broker operations that failed", ["op"], registry=REGISTRY
)
STORE_ERRORS = Counter(
    "treadle_store_errors_total", "Store operations that failed", ["op"], registry=REGISTRY
)
IN_FLIGHT = Gauge(
    "treadle_worker_in_flight", "Attempts running in this worker process", registry=REGISTRY
)
RUNS = Gauge("treadle_runs", "Runs by state (from the store)", ["state"], registry=REGISTRY)
TASKS = Gauge("treadle_tasks", "Tasks by state (from the store)", ["state"], registry=REGISTRY)
QUEUE_DEPTH = Gauge(
    "treadle_queue_depth",
    "Queued tasks waiting for a worker, by queue",
    ["queue"],
    registry=REGISTRY,
)


def observe_attempt(kind: str, outcome: Any, seconds: float | None) -> None:
    """Count one finished attempt (``outcome`` is an :class:`AttemptOutcome`)."""
    ATTEMPTS.labels(kind or "unknown", outcome.attempt_status).inc()
    if seconds is not None:
        TASK_DURATION.labels(kind or "unknown").observe(seconds)
    if outcome.attempt_status == "failed" and outcome.task_status == "queued":
        RETRIES.inc()


def observe_run(run: Any) -> None:
    """Record a run's duration once it reached a final state (a :class:`RunRecord`)."""
    if run.status not in ("completed", "failed", "cancelled"):
        return
    if run.started_at is not None and run.finished_at is not None:
        seconds = (run.finished_at - run.started_at).total_seconds()
        RUN_DURATION.labels(run.status).observe(max(0.0, seconds))


async def refresh_state_gauges(store: Any) -> None:
    """Read run/task counts by state and queue depth from a SQL store."""
    from sqlalchemy import func, select

    from treadle.store import schema as t

    transaction = getattr(store, "_tx", None)  # every SqlStore (SQLite, PostgreSQL) has one
    if transaction is None:  # a store without SQL: the counters still tell most of the story
        return
    try:
        async with transaction() as conn:
            runs = (
                await conn.execute(select(t.runs.c.status, func.count()).group_by(t.runs.c.status))
            ).all()
            tasks = (
                await conn.execute(
                    select(t.tasks.c.status, func.count()).group_by(t.tasks.c.status)
                )
            ).all()
            queues = (
                await conn.execute(
                    select(t.tasks.c.queue, func.count())
                    .where(t.tasks.c.status == "queued")
                    .group_by(t.tasks.c.queue)
                )
            ).all()
    except Exception as exc:
        STORE_ERRORS.labels("metrics").inc()
        log.warning("reading state counts for /metrics failed: %s", exc)
        return
    from treadle.model.states import RunStatus, TaskStatus

    _set_all(RUNS, [s.value for s in RunStatus], runs)
    _set_all(TASKS, [s.value for s in TaskStatus], tasks)
    QUEUE_DEPTH.clear()
    for queue, count in queues:
        QUEUE_DEPTH.labels(queue).set(count)


def _set_all(gauge: Gauge, states: list[str], rows: Any) -> None:
    counts = {str(state): int(count) for state, count in rows}
    for state in set(states) | set(counts):
        gauge.labels(state).set(counts.get(state, 0))


def exposition() -> bytes:
    return generate_latest(REGISTRY)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> None:
    """Serve :data:`REGISTRY` on ``host:port`` from a background thread (workers)."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=host, registry=REGISTRY)
