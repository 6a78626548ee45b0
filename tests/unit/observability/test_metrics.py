from __future__ import annotations

import socket

import httpx

from treadle.observability import metrics
from treadle.store.records import AttemptOutcome


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_attempt_outcomes_feed_counters_and_histograms() -> None:
    before_retry = metrics.RETRIES._value.get()
    retry = AttemptOutcome("a1", "t1", "failed", "queued", None, "boom")
    metrics.observe_attempt("unit-kind", retry, 0.2)
    done = AttemptOutcome("a2", "t1", "completed", "completed", {}, None)
    metrics.observe_attempt("unit-kind", done, 0.4)
    text = metrics.exposition().decode()
    assert 'treadle_attempts_total{kind="unit-kind",outcome="failed"} 1.0' in text
    assert 'treadle_attempts_total{kind="unit-kind",outcome="completed"} 1.0' in text
    assert 'treadle_task_duration_seconds_count{kind="unit-kind"} 2.0' in text
    assert metrics.RETRIES._value.get() == before_retry + 1


def test_worker_metrics_port_serves_the_registry() -> None:
    port = _free_port()
    metrics.start_metrics_server(port, host="127.0.0.1")
    metrics.BROKER_ERRORS.labels("unit-test").inc()
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'treadle_broker_errors_total{op="unit-test"} 1.0' in body
