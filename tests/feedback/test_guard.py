"""Connection guards of the receiver on a real socket: a connection limit (503) and a header read timeout."""

from __future__ import annotations

import asyncio

from aiohttp import web

from engine.feedback.guard import GuardedSite, Watch, track_requests


async def _serve(max_connections: int, read_timeout: float):
    watch = Watch(read_timeout)

    async def ok(request):
        return web.Response(text="ok")

    app = web.Application(middlewares=[track_requests(watch)])
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = GuardedSite(runner, "127.0.0.1", 0, watch=watch, max_connections=max_connections)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def _get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


def test_connections_past_the_limit_get_503_and_close():
    async def go():
        runner, port = await _serve(max_connections=2, read_timeout=30)
        try:
            idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            await asyncio.sleep(0.05)
            refused = await _get(port)
            for _, w in idle:
                w.close()
            await asyncio.sleep(0.1)
            served = await _get(port)
            return refused, served
        finally:
            await runner.cleanup()

    refused, served = asyncio.run(go())
    assert refused.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in refused
    assert served.startswith(b"HTTP/1.1 200") and served.endswith(b"ok")


def test_a_connection_that_never_finishes_its_headers_is_closed_after_the_read_timeout():
    async def go():
        runner, port = await _serve(max_connections=10, read_timeout=0.3)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), 5)  # returns when the server closes
            writer.close()
            return data, await _get(port)
        finally:
            await runner.cleanup()

    data, served = asyncio.run(go())
    assert b"200" not in data
    assert served.startswith(b"HTTP/1.1 200")
