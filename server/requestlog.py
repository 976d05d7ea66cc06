"""Request ids and the access log.

Every request aiohttp serves gets an id (16 hex digits) before any handler runs: the
`request_ids` middleware opens the activity scope (ca/activity.py) so every event the request
causes carries it, and answers it in an ``X-Request-Id`` header so a client's report can be
matched to the log.

The access log (`[logging] access_log = true`, off by default) writes one line per request
on the `tetra.access` logger: method, path, status, bytes of body sent, duration in ms,
request id and remote address. aiohttp calls `AccessLog` once a response is sent; the OCSP
fast path (server/plain_http.py), which never reaches aiohttp, calls `FastPathAccess`. With
the access log off neither exists, and the fast path neither times nor names its requests.
"""

from __future__ import annotations

import logging
import time
from asyncio import BaseTransport
from dataclasses import replace
from time import perf_counter
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from ca.activity import new_request_id, render_value, request_scope
from protocols.base import WireResponse

ACCESS = logging.getLogger("tetra.access")
HEADER = "X-Request-Id"
REQUEST_ID = web.RequestKey("tetra_request_id", str)  # kept on the aiohttp request for the access log
STARTED = web.RequestKey("tetra_request_started", float)  # perf_counter() when routing began


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The outermost middleware: a fresh id for the request, its activity scope, its header."""
    request_id = new_request_id()
    request[REQUEST_ID] = request_id
    request[STARTED] = time.perf_counter()
    with request_scope(request_id):
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # aiohttp answers these itself; still name the request
            exc.headers[HEADER] = request_id
            raise
    if not response.prepared:
        response.headers[HEADER] = request_id
    return response


def access_fields(
    method: str, path: str, status: int, size: int, millis: float, request_id: str, remote: str | None
) -> dict[str, Any]:
    return {
        "method": method,
        "path": path[:300],
        "status": status,
        "bytes": size,
        "duration_ms": round(millis, 3),
        "request_id": request_id,
        "remote": remote or "-",
    }


def log_access(fields: dict[str, Any]) -> None:
    """One access line: ``access method=GET path=/roots.pem status=200 ...`` (JSON: the fields)."""
    text = "access " + " ".join(f"{key}={render_value(value)}" for key, value in fields.items())
    ACCESS.info("%s", text, extra={"activity": {"event": "http.access", **fields}})


class AccessLog(AbstractAccessLogger):
    """aiohttp's hook, called once per request after the response is sent."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        request_id = request.get(REQUEST_ID) or "-"  # "-": refused before routing (a malformed head)
        started = request.get(STARTED)
        # aiohttp's own `time` has the loop clock's millisecond steps; ours is finer when we have it.
        millis = (perf_counter() - started) * 1000 if started is not None else time * 1000
        path = request.rel_url.raw_path
        fields = access_fields(
            request.method, path, response.status, response.body_length, millis, request_id, request.remote
        )
        log_access(fields)

    @property
    def enabled(self) -> bool:
        return ACCESS.isEnabledFor(logging.INFO)


class FastPathAccess:
    """The access log of the OCSP fast path: the same line for the requests it answers itself."""

    @staticmethod
    def started() -> float:
        return time.perf_counter()

    @staticmethod
    def named(response: WireResponse) -> tuple[WireResponse, str]:
        """The response with its request id header, and the id."""
        request_id = new_request_id()
        return replace(response, headers={**response.headers, HEADER: request_id}), request_id

    @staticmethod
    def answered(
        method: str, url: bytes, status: int, size: int, started: float, request_id: str, transport: BaseTransport
    ) -> None:
        millis = (time.perf_counter() - started) * 1000
        path = url.partition(b"?")[0].decode("latin-1")
        peer = transport.get_extra_info("peername")
        remote = peer[0] if isinstance(peer, tuple) else None
        log_access(access_fields(method, path, status, size, millis, request_id, remote))


__all__ = ["HEADER", "AccessLog", "FastPathAccess", "log_access", "request_ids"]
