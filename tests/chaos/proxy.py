"""A small TCP proxy with faults, in a thread of the test process (Toxiproxy's idea).

Processes connect to the proxy's port instead of a service's. The test then switches faults on
and off for every connection through it:

- :meth:`ChaosProxy.set_latency`: delay every chunk, both directions;
- :meth:`ChaosProxy.stall`: stop passing bytes (connections stay open, new ones are accepted
  but not forwarded) until :meth:`ChaosProxy.release`: a network that hangs, then heals without
  losing a byte, like a half-open link or a frozen switch;
- :meth:`ChaosProxy.reset`: abort every live connection with a TCP RST; the listener stays up,
  so clients that reconnect get through again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any


class ChaosProxy:
    """See the module docstring. ``with ChaosProxy(host, port) as proxy: ... proxy.port``."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing: asyncio.Event | None = None
        self._latency = 0.0
        self.connections = 0  # accepted so far (a figure for the report)
        self.port = 0

    # -- control (called from the test's thread) ----------------------------------------------
    def __enter__(self) -> ChaosProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_latency(self, seconds: float) -> None:
        self._latency = seconds

    def stall(self) -> None:
        self._call(self._set_flowing(False))

    def release(self) -> None:
        self._call(self._set_flowing(True))

    def reset(self) -> int:
        """Abort every live connection with an RST; return how many were cut."""
        return int(self._call(self._reset()))

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    # -- the proxy (in its own loop) ----------------------------------------------------------
    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _reset(self) -> int:
        writers, self._writers = list(self._writers), set()
        for writer in writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    # Linger 0: close() sends an RST instead of a FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        return len(writers) // 2

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        assert self._flowing is not None
        self._flowing.set()
        await self._reset()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Cancelled at close: end quietly (asyncio logs a cancelled connection callback).
        with contextlib.suppress(asyncio.CancelledError):
            await self._relay(reader, writer)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self.connections += 1
        self._writers.add(writer)
        await self._flowing.wait()  # a stalled link does not even open the upstream side
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            self._writers.discard(writer)
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await src.read(65536):
                if self._latency:
                    await asyncio.sleep(self._latency)
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.CancelledError):
            pass
        with contextlib.suppress(OSError, RuntimeError):
            dst.close()
