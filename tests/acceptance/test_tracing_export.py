"""`TREADLE_TRACING=otlp`: a real process exports its spans over OTLP/HTTP to a collector."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ROOT, treadle_cmd
from tests.services import require_module

require_module("opentelemetry.exporter.otlp.proto.http")

DEFINITION = """
name: exported
tasks:
  - name: first
    kind: shell
    command: ["echo", "one"]
  - name: second
    kind: log
    message: done
"""


class _Collector(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append(  # type: ignore[attr-defined]
            (self.path, self.headers.get("Content-Type"), body)
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str | None, bytes]]]]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    httpd.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", httpd.received  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "exported.yaml"
    path.write_text(DEFINITION)
    return subprocess.run(
        [*treadle_cmd(), "run", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src"), **env},
    )


def test_otlp_spans_reach_the_collector(
    tmp_path: Path, collector: tuple[str, list[tuple[str, str | None, bytes]]]
) -> None:
    url, received = collector
    env = {
        "TREADLE_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_SERVICE_NAME": "treadle-export-test",
    }
    result = _run(tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert received, "no OTLP request arrived"
    assert {path for path, _, _ in received} == {"/v1/traces"}
    assert {kind for _, kind, _ in received} == {"application/x-protobuf"}
    # Protobuf keeps strings as raw bytes: the span names and the service name are in there.
    payload = b"".join(body for _, _, body in received)
    for name in (b"treadle.run.submit", b"treadle.task.dispatch", b"treadle.task.attempt"):
        assert name in payload, name
    assert b"treadle-export-test" in payload


def test_asking_for_tracing_without_opentelemetry_is_one_clear_line(tmp_path: Path) -> None:
    # A package that fails to import stands in for an install without the otel extra.
    shim = tmp_path / "shim" / "opentelemetry"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('opentelemetry is not installed')\n")
    path = tmp_path / "exported.yaml"
    path.write_text(DEFINITION)
    result = subprocess.run(
        [*treadle_cmd(), "run", str(path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={
            **os.environ,
            "PYTHONPATH": f"{tmp_path / 'shim'}{os.pathsep}{ROOT / 'src'}",
            "TREADLE_TRACING": "otlp",
        },
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "treadle[otel]" in result.stderr
    assert "Traceback" not in result.stderr
    # Without tracing asked for, the same install runs fine.
    plain = _run(tmp_path, {"PYTHONPATH": f"{tmp_path / 'shim'}{os.pathsep}{ROOT / 'src'}"})
    assert plain.returncode == 0, plain.stdout + plain.stderr
