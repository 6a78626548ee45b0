"""Shared fixtures: free ports, a real `treadle standalone` subprocess, a local HTTP server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `treadle standalone` process."""

    url: str
    db: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def wait_run(self, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                run = client.get(f"/api/v1/runs/{run_id}").json()
                if run["status"] in ("completed", "failed", "cancelled"):
                    return dict(run)
                if time.monotonic() > deadline:
                    raise AssertionError(f"run {run_id} still {run['status']}: {run}")
                time.sleep(0.1)


def treadle_cmd() -> list[str]:
    return [sys.executable, "-m", "treadle.cli.main"]


def start_server(
    tmp: Path, *extra: str, db: Path | None = None, env: dict[str, str] | None = None
) -> Server:
    port = free_port()
    db = db or tmp / "treadle.db"
    log = tmp / f"server-{port}.log"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    args = [*treadle_cmd(), "standalone", "--db", str(db), "--port", str(port), *extra]
    with log.open("wb") as sink:
        proc = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=full_env, cwd=tmp)
    server = Server(f"http://127.0.0.1:{port}", db, port, proc, log, args, full_env)
    # Generous: on a loaded 2-core machine a cold start (imports, migrations) can take long.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise AssertionError(f"server did not become ready: {log.read_text()}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path, "--definitions", str(ROOT / "examples"))
    try:
        yield srv
    finally:
        srv.stop()


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        return None

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.requests.append(  # type: ignore[attr-defined]
            {"method": self.command, "path": self.path, "body": body, "headers": dict(self.headers)}
        )
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
            self.send_response(code)
            self.end_headers()
            return
        payload = json.dumps(
            {"method": self.command, "path": self.path, "body": body, "id": 7}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer


@dataclass
class EchoServer:
    url: str
    requests: list[dict[str, Any]]


@pytest.fixture
def echo_server() -> Iterator[EchoServer]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    httpd.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield EchoServer(f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests)  # type: ignore[attr-defined]
    finally:
        httpd.shutdown()
        httpd.server_close()
