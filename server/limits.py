"""Bounds on every listener's clients: how long a request's head and body may take, how long a
kept-alive connection may idle, and how many connections one address may hold.

aiohttp alone bounds none of these (its idle timeout is an hour, and it has no head or body
timeout), so a few hundred connections sending their headers a byte a second, all from one
address, held the server. Every listener now takes its connections through a `ListenerGuard`:
the HTTPS listener and the aiohttp half of the plain-HTTP listener through `BoundedSite` and
`BoundedRequestHandler` below, the OCSP fast path (server/plain_http.py) through the same
guard and the same limits, and a connection the fast path hands to aiohttp stays counted once.

What a client gets wrong (past a timeout, over the cap, malformed HTTP) is its fault, not the
server's: one INFO line (a WARNING when an address first reaches the cap), never a traceback,
and a count in tetra_http_refused_total{reason}.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from prometheus_client import Counter

from server.config import ListenerLimits

log = logging.getLogger("tetra.http")

_TOO_MANY_BODY = b"too many connections from your address; close one and retry\n"
TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    + f"Content-Length: {len(_TOO_MANY_BODY)}\r\n\r\n".encode()
    + _TOO_MANY_BODY
)


class Refusal(StrEnum):
    """The `reason` label of tetra_http_refused_total."""

    HEADER_TIMEOUT = "header_timeout"
    BODY_TIMEOUT = "body_timeout"
    PER_ADDRESS = "per_address_limit"
    MALFORMED = "malformed"


def client_address(transport: asyncio.BaseTransport) -> str:
    """The address a connection counts against: the IP, or for IPv6 its /64 (one client
    usually holds a whole /64, and would otherwise have 2**64 addresses to spread over)."""
    peer = transport.get_extra_info("peername")
    host = peer[0] if isinstance(peer, tuple) and peer else str(peer)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def one_line(text: object, limit: int = 200) -> str:
    """A client-supplied reason as one bounded log line (aiohttp's parser messages span several)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class ListenerGuard:
    """One listener's limits, the connections each address holds on it, and its refusals."""

    def __init__(self, name: str, limits: ListenerLimits, refused: Counter) -> None:
        self.name = name
        self.limits = limits
        self._refused = {reason: refused.labels(reason.value) for reason in Refusal}
        self._per_address: dict[str, int] = {}
        self._held: dict[asyncio.BaseTransport, str] = {}  # admitted connection -> its address
        self._warned: set[str] = set()  # addresses at the cap already named in the log

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        """Count a new connection against its address, or answer 503 and close it. A connection
        handed from one protocol to another on this listener is already counted."""
        if transport in self._held:
            return True
        address = client_address(transport)
        held = self._per_address.get(address, 0)
        if held >= self.limits.max_connections_per_address:
            self._refused[Refusal.PER_ADDRESS].inc()
            if address not in self._warned:
                self._warned.add(address)
                log.warning(
                    "%s listener: %s holds %d connections, the most one address may "
                    "(max_connections_per_address); refusing more until it closes some",
                    self.name,
                    address,
                    held,
                )
            cast(asyncio.Transport, transport).write(TOO_MANY)  # uvloop's is no WriteTransport subclass
            transport.close()
            return False
        self._per_address[address] = held + 1
        self._held[transport] = address
        return True

    def release(self, transport: asyncio.BaseTransport) -> None:
        address = self._held.pop(transport, None)
        if address is None:
            return
        left = self._per_address[address] - 1
        if left:
            self._per_address[address] = left
        else:
            del self._per_address[address]
            self._warned.discard(address)

    def refused(self, reason: Refusal, peer: str | None, detail: str) -> None:
        self._refused[reason].inc()
        log.info("%s listener: refused %s: %s", self.name, peer or "a client", detail)


def refuse_malformed_body(request: web.BaseRequest, exc: RequestPayloadError) -> web.HTTPBadRequest:
    """A body aiohttp could not decode (bad chunk framing, a gzip body that is not gzip): counted
    and logged as the client's fault; the 400 to raise. Without a guard (a test server), logged."""
    detail = f"malformed request body: {one_line(exc)}"
    protocol = request.protocol
    if isinstance(protocol, BoundedRequestHandler):
        protocol.guard.refused(Refusal.MALFORMED, request.remote, detail)
    else:
        log.info("refused %s: %s", request.remote, detail)
    return web.HTTPBadRequest(text=f"{detail}\n")


class BoundedRequestHandler(RequestHandler):
    """aiohttp's protocol, with the guard's limits.

    Clocks: a new connection has `header_timeout` to deliver its first complete head; later
    heads have as long from their first byte (between requests, aiohttp's keep-alive timeout
    is the configured idle limit). A body has `body_timeout` from the end of its head. Time the
    server itself takes (a handler still running, reading paused because the application has
    not consumed what came) does not count against the client. A head the OCSP fast path hands
    over part-way starts a fresh head clock here: at most twice `header_timeout` in all.
    """

    __slots__ = ("_admitted", "_body", "_deadline", "_waiting_for", "guard")

    def __init__(self, manager: web.Server, guard: ListenerGuard, *, loop: asyncio.AbstractEventLoop) -> None:
        # The access log as run_server asked AppRunner for it (server/requestlog.py): none when off;
        # and its request-line limit (a SCEP GET carries its whole message in the query).
        made_with = getattr(manager, "_kwargs", {})
        access = {
            key: made_with[key] for key in ("access_log", "access_log_class", "max_line_size") if key in made_with
        }
        access.setdefault("access_log", None)
        keepalive = guard.limits.keepalive_timeout
        super().__init__(manager, loop=loop, keepalive_timeout=keepalive, **access)
        self.guard = guard
        self._admitted: asyncio.BaseTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: Refusal | None = None  # HEADER_TIMEOUT or BODY_TIMEOUT while a clock runs
        self._body: Any = None  # the StreamReader of a body still arriving

    # -- the connection ---------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.guard.admit(transport):
            return  # answered 503 and closed; aiohttp never sees it
        self._admitted = transport
        super().connection_made(transport)
        self._start_clock(Refusal.HEADER_TIMEOUT)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._stop_clock()
        if self._admitted is None:
            return
        self.guard.release(self._admitted)
        self._admitted = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._admitted is None:
            return
        parsed = self._request_count
        super().data_received(data)
        if self._request_count != parsed:  # a head is complete (or refused as malformed)
            payload = self._messages[-1][1] if self._messages else None
            if payload is not None and not payload.is_eof():
                self._start_clock(Refusal.BODY_TIMEOUT)
                self._body = payload
            else:
                self._stop_clock()
        elif self._waiting_for is Refusal.BODY_TIMEOUT:
            if self._body is None or self._body.is_eof():
                self._stop_clock()
        elif data and self._waiting_for is None:
            self._start_clock(Refusal.HEADER_TIMEOUT)  # the first bytes of the next head

    # -- the clock --------------------------------------------------------------------------------
    def _start_clock(self, waiting_for: Refusal) -> None:
        self._stop_clock()
        if waiting_for is Refusal.HEADER_TIMEOUT and self._keepalive_handle is not None:
            # A head has begun (or a new connection awaits its first): the idle clock is done, and
            # would otherwise close the connection silently before this one could count it.
            # aiohttp starts a new idle clock after the answer.
            self._keepalive_handle.cancel()
            self._keepalive_handle = None
        limits = self.guard.limits
        seconds = limits.header_timeout if waiting_for is Refusal.HEADER_TIMEOUT else limits.body_timeout
        self._waiting_for = waiting_for
        self._deadline = self._loop.call_later(seconds, self._overdue)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = None
        self._waiting_for = None
        self._body = None

    def _overdue(self) -> None:
        self._deadline = None
        waiting_for = self._waiting_for
        if waiting_for is None or self.transport is None:
            return
        # Reading paused for the application, a request parsed but still queued behind another
        # (its body may wait on our 100 Continue), a head pipelined behind a request in progress.
        server_busy = (
            self._reading_paused
            or bool(self._messages)
            or (waiting_for is Refusal.HEADER_TIMEOUT and self._request_in_progress)
        )
        if server_busy:  # the wait is ours, not the client's: give it the full time again
            self._start_clock(waiting_for)
            return
        limits = self.guard.limits
        if waiting_for is Refusal.HEADER_TIMEOUT:
            detail = f"no complete request head within {limits.header_timeout:g} s (header_timeout_seconds)"
        else:
            detail = f"request body incomplete after {limits.body_timeout:g} s (body_timeout_seconds)"
        peer = self.peername
        self.guard.refused(waiting_for, peer[0] if isinstance(peer, tuple) else None, detail)
        self._stop_clock()
        self.force_close()

    # -- what aiohttp would log as an error -------------------------------------------------------
    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Malformed HTTP (a negative Content-Length, Content-Length with Transfer-Encoding, an
        8 KB request line...): 400 and one INFO line, where aiohttp logs an ERROR traceback."""
        if status != 400 or not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        reason = one_line(exc.message or exc)
        self.guard.refused(Refusal.MALFORMED, request.remote, f"malformed HTTP: {reason}")
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already started; cannot answer 400")
        response = web.Response(status=400, text=f"bad request: {reason}\n")
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """What aiohttp logs after the answer was given: a body the handler refused, read again
        to drain it, or a client gone mid-request. Counted where it was answered; DEBUG here."""
        exc = kw.get("exc_info")
        if isinstance(exc, (HttpProcessingError, RequestPayloadError, ConnectionError)):
            self.logger.debug(*args, **{**kw, "exc_info": False})
            return
        super().log_exception(*args, **kw)


def bounded_handlers(server: web.Server, guard: ListenerGuard) -> Callable[[], BoundedRequestHandler]:
    """The protocol factory for one listener's aiohttp connections (what `server` itself would
    make, plus the guard)."""
    loop = asyncio.get_running_loop()
    return lambda: BoundedRequestHandler(server, guard, loop=loop)


class BoundedSite(web.BaseSite):
    """A TCP listener (plain or TLS) whose connections are `BoundedRequestHandler`s of one guard.
    A TLS handshake must finish within `header_timeout` too."""

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        guard: ListenerGuard,
        *,
        ssl_context: Any = None,
        reuse_port: bool = False,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._reuse_port = reuse_port
        self.guard = guard

    @property
    def name(self) -> str:
        return f"{'https' if self._ssl_context else 'http'}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            bounded_handlers(server, self.guard),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=True,
            reuse_port=self._reuse_port,
            ssl_handshake_timeout=self.guard.limits.header_timeout if self._ssl_context else None,
        )
