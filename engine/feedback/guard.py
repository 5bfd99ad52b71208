"""Connection guards for the webhook receiver: a connection limit and a read timeout.

aiohttp limits body sizes but not how many connections are open nor how long a client
may take to send its request headers (a "slowloris" holds a connection open by sending a
header line every few seconds).  :class:`GuardedSite` listens like ``web.TCPSite`` and

* answers ``503`` and closes at once when ``max_connections`` connections are open;
* closes a connection that has not finished its request headers ``read_timeout``
  seconds after it opened (or after its previous request ended, for keep-alive).

Bodies are read by the handlers under the same timeout (``asyncio.wait_for``).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

__all__ = ["GuardedSite", "Watch", "track_requests"]

_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"


class _Busy(asyncio.Protocol):
    """A refused connection: one 503, then closed."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(_BUSY)  # type: ignore[attr-defined]
        transport.close()


class Watch:
    """Per server: when each connection last started waiting for a request, and which are busy."""

    def __init__(self, read_timeout: float):
        self.read_timeout = float(read_timeout)
        self.idle_since: dict[object, float] = {}
        self.busy: set[object] = set()

    def sweep(self, server: web.Server) -> None:
        now = time.monotonic()
        live = server.connections
        for handler in live:
            if handler in self.busy:
                continue
            since = self.idle_since.setdefault(handler, now)
            if now - since > self.read_timeout:
                handler.force_close()
        if len(self.idle_since) > 2 * len(live) + 64:
            alive = set(live)
            self.idle_since = {h: t for h, t in self.idle_since.items() if h in alive}
            self.busy &= alive


def track_requests(watch: Watch):
    """Middleware: a connection is busy while a request of it is handled."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        proto = request.protocol
        watch.busy.add(proto)
        try:
            return await handler(request)
        finally:
            watch.busy.discard(proto)
            watch.idle_since[proto] = time.monotonic()

    return middleware


class GuardedSite(web.TCPSite):
    """``web.TCPSite`` with a connection limit and a header read timeout (seconds)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, watch: Watch,
                 max_connections: int):
        super().__init__(runner, host, port)
        self._watch = watch
        self._max = int(max_connections)
        self._sweeper: asyncio.Task | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)
        loop = asyncio.get_running_loop()
        server = self._runner.server
        limit = self._max

        def factory():
            if len(server.connections) >= limit:
                return _Busy()
            return server()

        self._server = await loop.create_server(factory, self._host, self._port, backlog=self._backlog,
                                                reuse_address=self._reuse_address)
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
        self._sweeper = loop.create_task(self._sweep(server))

    async def _sweep(self, server) -> None:
        step = max(0.05, min(1.0, self._watch.read_timeout / 4))
        while True:
            await asyncio.sleep(step)
            self._watch.sweep(server)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await super().stop()
