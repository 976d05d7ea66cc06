"""server/http.py reading a request body whose connection is gone: the client hung up, or a
listener bound (server/limits.py) closed it. That is no bug: no ERROR, no traceback, no answer."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web

from server.http import last_resort, to_wire
from tests.rawhttp import Connection, request


@pytest.mark.parametrize("read", ["before-the-close-is-seen", "after-the-close-is-seen"])
async def test_a_body_cut_off_under_its_reader_is_no_error(caplog: pytest.LogCaptureFixture, read: str) -> None:
    """DOS-09: the body timeout closes a connection while its handler reads the body. aiohttp
    raises RuntimeError for a read begun after the close but before the connection is reported
    lost (seen under load: an ERROR traceback per cut-off body), ConnectionResetError after."""
    read_failed = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        protocol = request.protocol
        assert protocol is not None
        protocol.force_close()  # what BoundedRequestHandler does when the body is overdue
        if read == "after-the-close-is-seen":
            await asyncio.sleep(0.05)
        try:
            await to_wire(request, "/", 1024)
        finally:
            read_failed.set()
        return web.Response(text="not reached")

    app = web.Application(middlewares=[last_resort])
    app.router.add_post("/", handler)
    runner = web.AppRunner(app, access_log=None)  # as run_server serves it (handlers not cancelled)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    caplog.set_level(logging.DEBUG, logger="tetra.http")
    conn = await Connection.open(site.port)
    try:
        await conn.send(request("POST", "/", headers={"Content-Length": "100"}) + b"only part")
        assert await conn.closed(5) == b""
        await asyncio.wait_for(read_failed.wait(), 5)
        await asyncio.sleep(0.05)
    finally:
        conn.close()
        await runner.cleanup()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert "connection lost while reading the body of POST /" in caplog.text
