"""A TCP proxy that cuts connections on demand (issue 17.3): it sits between the services and FerretDB or RabbitMQ.

The services are pointed at the proxy's port; the proxy forwards every connection to the real server, in its own
thread with its own event loop, so the test's loop (HTTP, listener) does not slow the traffic down. Two cuts:

* ``cut_mid_request(n)``: the next ``n`` connections that send something (a MongoDB command, an AMQP publish or
  ack) have it forwarded to the server, and then the server's answer is dropped and both sides are reset. The
  server did the work; the client never hears of it (the hardest case for "nothing applied twice").
* ``cut_all()``: every open connection is reset at once, whatever it is doing (idle pool connections included).

Resets are TCP RSTs (SO_LINGER 0), as a crashed peer or a dropped NAT entry would give.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass

CHUNK = 65536


@dataclass(eq=False)
class _Pair:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    doomed: bool = False  # a request went through: the next answer is dropped and the connection reset

    def reset(self) -> None:
        for writer in (self.client, self.server):
            with contextlib.suppress(OSError, AttributeError):
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()


class CuttingProxy:
    """``127.0.0.1:<port>`` -> ``target_host:target_port``; start() before use, stop() after."""

    def __init__(self, name: str, target_host: str, target_port: int) -> None:
        self.name = name
        self.target = (target_host, target_port)
        self.port = 0
        self.accepted = 0
        self.cut_mid = 0  # connections reset after their request went through, before its answer
        self.cut_open = 0  # connections reset by cut_all
        self._pairs: set[_Pair] = set()
        self._armed = 0
        self._match = b""
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{name}", daemon=True)

    def start(self) -> CuttingProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0), self._loop).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for pair in list(self._pairs):
                pair.reset()
        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def open(self) -> int:
        return len(self._pairs)

    def cut_all(self) -> int:
        """Reset every open connection now; returns how many."""
        async def cut() -> int:
            pairs = list(self._pairs)
            for pair in pairs:
                pair.reset()
            self.cut_open += len(pairs)
            return len(pairs)
        return asyncio.run_coroutine_threadsafe(cut(), self._loop).result(10)

    def cut_mid_request(self, n: int, timeout: float = 10.0, match: bytes = b"") -> int:
        """Cut the next ``n`` connections that send a request (one whose bytes contain ``match``, e.g. the
        ``update`` of a MongoDB command) after it went through; waits at most ``timeout`` seconds for them and
        returns how many were cut (requests still armed after that are disarmed)."""
        before = self.cut_mid
        self.arm(n, match)
        deadline = time.monotonic() + timeout
        while self.cut_mid - before < n and time.monotonic() < deadline:
            time.sleep(0.05)
        self._loop.call_soon_threadsafe(self._disarm)
        return self.cut_mid - before

    def arm(self, n: int, match: bytes = b"") -> None:
        """``cut_mid_request`` without waiting: armed when this returns, cut as the requests come."""
        async def arm() -> None:
            self._armed += n
            self._match = match
        asyncio.run_coroutine_threadsafe(arm(), self._loop).result(10)

    def _disarm(self) -> None:
        self._armed = 0

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()  # the server is away: the client sees its connection refused, as it would
            return
        pair = _Pair(client_w, server_w)
        self._pairs.add(pair)
        try:
            up = asyncio.ensure_future(self._upstream(pair, client_r))
            down = asyncio.ensure_future(self._downstream(pair, server_r))
            _, pending = await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            self._pairs.discard(pair)
            pair.reset()

    async def _upstream(self, pair: _Pair, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                if self._armed and not pair.doomed and self._match in data:
                    self._armed -= 1
                    pair.doomed = True  # before the write: the answer cannot overtake it
                pair.server.write(data)
                await pair.server.drain()

    async def _downstream(self, pair: _Pair, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(CHUNK):
                if pair.doomed:
                    self.cut_mid += 1
                    return  # the answer is dropped; _handle resets both sides
                pair.client.write(data)
                await pair.client.drain()
