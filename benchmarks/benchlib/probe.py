"""The measurement probe every peer task calls: one datagram to the harness per execution.

A peer's no-op task sends ``tag start_time pid submitted`` to a Unix datagram socket the harness
owns, so completions are counted without a result backend and without polling a broker. The
cost (a few microseconds) is the same for every peer. treadle's tasks do not call it: its store
already records when each task started and finished, and the harness reads those instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass

ENV = "BENCH_PROBE"
_sender: socket.socket | None = None


def send(tag: str, submitted: float = 0.0) -> None:
    """Called inside a peer task: report that ``tag`` started now."""
    global _sender
    path = os.environ[ENV]
    if _sender is None:
        _sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    _sender.sendto(f"{tag} {time.time():.6f} {os.getpid()} {submitted:.6f}".encode(), path)


@dataclass(frozen=True, slots=True)
class Hit:
    tag: str
    at: float
    pid: int
    submitted: float


class ProbeServer:
    """Receives probe datagrams on a background thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        self._sock.bind(path)
        self._hits: list[Hit] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True, name="probe")
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self._sock.recv(256)
            except OSError:
                return
            tag, at, pid, submitted = data.decode().split()
            with self._cond:
                self._hits.append(Hit(tag, float(at), int(pid), float(submitted)))
                self._cond.notify_all()

    def reset(self) -> None:
        with self._cond:
            self._hits = []

    def wait(self, count: int, timeout: float, prefix: str = "") -> list[Hit]:
        """Block until ``count`` hits whose tag starts with ``prefix`` arrived since the last
        reset (stragglers of an earlier, timed-out cell carry another prefix); TimeoutError
        otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (got := sum(1 for h in self._hits if h.tag.startswith(prefix))) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{got} of {count} tasks ran in {timeout:g} s")
                self._cond.wait(min(left, 0.5))
            return [h for h in self._hits if h.tag.startswith(prefix)]

    def close(self) -> None:
        self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
