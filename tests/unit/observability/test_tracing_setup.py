"""Tracing setup: off by default, a clear error for a bad mode or a missing package."""

from __future__ import annotations

import sys

import pytest

from treadle.config import load_settings
from treadle.errors import ConfigError
from treadle.observability import tracing


def test_off_by_default_everything_is_a_no_op() -> None:
    assert load_settings(None).tracing == "none"
    tracing.configure("none")
    assert not tracing.enabled()
    with tracing.span("x", {"a": 1}) as span:
        assert span is None
        assert tracing.current_headers() == {}
        assert tracing.current_traceparent() is None
    headers = {"X": "1"}
    tracing.add_trace_headers(headers, tracing.current_headers())
    assert headers == {"X": "1"}


def test_a_bad_mode_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="zipkin"):
        tracing.configure("zipkin")
    monkeypatch.setenv("TREADLE_TRACING", "zipkin")
    with pytest.raises(ConfigError, match="tracing"):
        load_settings(None)


def test_without_opentelemetry_installed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A None entry makes `import opentelemetry...` fail as if the package were absent.
    for name in [m for m in sys.modules if m.startswith("opentelemetry")] + ["opentelemetry"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ConfigError, match=r"treadle\[otel\]"):
        tracing.configure("otlp")
    assert not tracing.enabled()


def test_otel_sdk_disabled_keeps_tracing_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    tracing.configure("console")
    assert not tracing.enabled()


def test_headers_a_task_sets_win_over_the_trace_context() -> None:
    headers = {"TraceParent": "00-mine-01"}
    tracing.add_trace_headers(headers, {"traceparent": "00-engine-01", "tracestate": "a=b"})
    assert headers == {"TraceParent": "00-mine-01", "tracestate": "a=b"}
