"""A local HTTP server that records requests and answers from a script (no mocks of treadle)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Recorder:
    """Answers each request with the next scripted (status, body, content type)."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    answers: list[tuple[int, Any, str]] = field(default_factory=list)

    def answer(self, status: int, body: Any, content_type: str = "application/json") -> None:
        self.answers.append((status, body, content_type))


def serve() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorder.seen.append(
                Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status, payload, ctype = (
                recorder.answers.pop(0) if recorder.answers else (200, {}, "application/json")
            )
            data = (
                payload
                if isinstance(payload, bytes)
                else (
                    payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                )
            )
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _any

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
