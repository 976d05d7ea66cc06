"""An in-process test server whose connections arrive through a named, guarded listener, as
`run_server` makes them: the management gate (server/manage/gate.py) decides by that name,
so a test can be the manage listener ("manage") or a public one ("http", "https")."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from server.app import METRICS
from server.config import ListenerLimits
from server.limits import BoundedSite, ListenerGuard
from server.manage.settings import MANAGE_LISTENER


class ListenerTestServer(TestServer):
    def __init__(self, app: web.Application, listener: str = MANAGE_LISTENER, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.listener = listener

    async def start_server(self, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        if self.runner:
            return
        self._loop = loop
        self.runner = await self._make_runner(handler_cancellation=True, **kwargs)
        await self.runner.setup()
        guard = ListenerGuard(self.listener, ListenerLimits(), self.app[METRICS].refused)
        site = BoundedSite(self.runner, self.host, 0, guard)
        await site.start()
        server: Any = site._server
        self.port = server.sockets[0].getsockname()[1]
        self.scheme = "http"
        self._root = URL(f"http://{self.host}:{self.port}")
