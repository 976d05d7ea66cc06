"""aiohttp Request <-> WireRequest / WireResponse, and the last-resort error middleware."""

from __future__ import annotations

import logging
import ssl

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError
from multidict import CIMultiDict, CIMultiDictProxy

from protocols.base import WireRequest, WireResponse
from server.failures import FAILURES, INTERNAL_ERROR
from server.limits import refuse_malformed_body

log = logging.getLogger("tetra.http")


def peer_certificate(request: web.Request) -> bytes | None:
    transport = request.transport
    if transport is None:
        return None
    sslobj = transport.get_extra_info("ssl_object")
    if not isinstance(sslobj, ssl.SSLObject):
        return None
    return sslobj.getpeercert(binary_form=True)


def tls_unique(request: web.Request) -> bytes | None:
    transport = request.transport
    sslobj = transport.get_extra_info("ssl_object") if transport else None
    if not isinstance(sslobj, ssl.SSLObject):
        return None
    if sslobj.version() == "TLSv1.3":
        # RFC 9266 §1: tls-unique is not defined for TLS 1.3 (OpenSSL would still answer with
        # the Finished message, which is not unique there): offer none, so EST's PoP linking
        # refuses clearly instead of trusting a value that binds nothing.
        return None
    try:
        return sslobj.get_channel_binding("tls-unique")
    except (ValueError, ssl.SSLError):
        return None


class ClientGone(Exception):
    """The connection closed while its body was read (the client hung up, or a listener bound cut
    it off, server/limits.py): no bug, and nobody left to answer."""


async def read_bounded(request: web.Request, limit: int) -> bytes:
    """The body, or 413 as soon as it passes the protocol's limit (chunked bodies included).
    aiohttp reports a connection closed under a read as ConnectionResetError, or as
    RuntimeError when the read starts after the close: both are `ClientGone` once the
    connection is gone."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await request.content.read(65536):
            size += len(chunk)
            if size > limit:
                raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
            chunks.append(chunk)
    except RequestPayloadError as exc:  # framing or content coding aiohttp could not decode
        raise refuse_malformed_body(request, exc) from None
    except (ConnectionResetError, RuntimeError):
        if request.transport is None:
            raise ClientGone from None
        raise
    return b"".join(chunks)


async def to_wire(request: web.Request, path: str, max_body: int) -> WireRequest:
    body = await read_bounded(request, max_body)
    return WireRequest(
        method=request.method,
        path=path,
        query=dict(request.query),
        headers=CIMultiDictProxy(CIMultiDict(request.headers)),
        body=body,
        match=dict(request.match_info),
        peer_certificate_der=peer_certificate(request),
        tls_unique=tls_unique(request),
        remote=request.remote or "",
        scheme=request.scheme,
        host=request.host,
    )


def to_aiohttp(response: WireResponse) -> web.Response:
    return web.Response(status=response.status, headers=dict(response.headers), body=response.body)


@web.middleware
async def last_resort(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only bugs outside a protocol's handlers reach here (the trust bundles, health, metrics; a
    protocol's own are answered in its words by server/app.py): logged as server/failures.py
    logs them, answered with a plain 500 without details. A client gone while its body was read
    is no bug (`ClientGone`)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except ClientGone:
        log.debug("connection lost while reading the body of %s %s", request.method, request.path)
        return web.Response(status=400)  # never sent: the connection is gone
    except Exception as exc:
        request.config_dict[FAILURES].record("server", f"{request.method} {request.path[:100]}", exc)
        return web.Response(status=500, text=INTERNAL_ERROR + "\n")
