"""The plain-HTTP listener: OCSP on a lean asyncio protocol, everything else on aiohttp.

OCSP is the one endpoint hit at relying-party scale, and most of its answers are already
signed and cached in memory; aiohttp's routing and request objects cost more than the
answer itself. So each connection starts here: complete requests for POST /ocsp and
GET /ocsp/<base64> are framed with llhttp (httptools) and answered through the same
`OcspHandlers` the aiohttp route uses: cached answers and nonces the process can sign at
once are written inline, the rest (store look-ups, signing devices) from a task. The first
request this path does not take (another route or method, chunked bodies, Expect, oversize
bodies or heads, anything llhttp refuses) hands the connection, from that request's first
byte, to aiohttp's own protocol for the rest of its life: every other route, limit and
error answer stays aiohttp's.

Only whole requests are consumed, so the hand-off point is exact; requests are answered in
order (pipelining), one at a time. The listener's `ListenerGuard` (server/limits.py) bounds
its clients here as it does on aiohttp's side: a head must be complete within the header
timeout, a body within the body timeout, an idle kept-alive connection is closed after the
keep-alive timeout, and an address over its connection cap is refused; a connection handed to
aiohttp stays counted once. No state is shared between connections, so a slow one blocks nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import math
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

import httptools

from protocols.base import WireResponse
from protocols.ocsp import SPEC as OCSP
from protocols.ocsp.handlers import OcspHandlers
from server.failures import UnexpectedFailures, internal_error
from server.limits import ListenerGuard, Refusal
from server.metrics import Metrics
from server.requestlog import FastPathAccess

MAX_HEAD = 16 * 1024  # larger heads go to aiohttp, which applies its own limits
MAX_BUFFERED = 256 * 1024  # pipelined bytes held while an answer is pending: then stop reading
PREFIX = b"/ocsp"
_METHODS = (b"POST " + PREFIX, b"GET " + PREFIX)
_HANDED_OFF_HEADERS = (b"transfer-encoding", b"expect", b"upgrade")  # aiohttp's to deal with
_INTERNAL_ERROR = internal_error(OCSP)  # an OCSP internalError (DOS-15)


class _Date:
    """The Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = email.utils.formatdate(second, usegmt=True).encode()
        return self._value


class _Head:
    """What llhttp reports about one request head (httptools calls these methods)."""

    __slots__ = (
        "complete",
        "content_length",
        "handed_off",
        "if_none_match",
        "keep_alive",
        "method",
        "parser",
        "started",
        "url",
        "version",
    )

    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.method = b""
        self.version = "1.1"
        self.keep_alive = False
        self.url = b""
        self.content_length = 0
        self.if_none_match: str | None = None
        self.handed_off = False  # a header the fast path leaves to aiohttp
        self.complete = False
        self.started = 0.0  # when the request was complete; only timed with the access log on

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length":
            self.content_length = int(value)  # llhttp has checked it is digits, and single
        elif name == b"if-none-match":
            if self.if_none_match is None:
                self.if_none_match = value.decode("latin-1")
        elif name in _HANDED_OFF_HEADERS:
            self.handed_off = True

    def on_headers_complete(self) -> None:
        # Read now: llhttp forgets the connection flags once the message is complete.
        self.method = self.parser.get_method()
        self.version = self.parser.get_http_version()
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.complete = True


class PlainListener:
    """The listening socket, its connections, and what they share."""

    def __init__(
        self,
        ocsp: OcspHandlers,
        aiohttp_protocol: Callable[[], asyncio.Protocol],
        metrics: Metrics,
        guard: ListenerGuard,
        failures: UnexpectedFailures,
        *,
        max_body: int,
        access: FastPathAccess | None = None,
    ) -> None:
        self.ocsp = ocsp
        self.aiohttp_protocol = aiohttp_protocol  # made with the same guard (server/limits.py)
        self.guard = guard
        self.limits = guard.limits
        self.failures = failures
        self.max_body = max_body
        self.access = access  # the access log (server/requestlog.py), None when it is off
        self.date = _Date()
        self.connections: set[OcspConnection] = set()
        self._requests = metrics.requests
        self._counters: dict[tuple[str, int], Any] = {}
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    def count(self, method: str, status: int) -> None:
        counter = self._counters.get((method, status))
        if counter is None:
            counter = self._counters[(method, status)] = self._requests.labels("ocsp", method, str(status))
        counter.inc()

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: OcspConnection(self), host, port, reuse_address=True, reuse_port=reuse_port
        )
        self._sweeper = asyncio.create_task(self._sweep())

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def _sweep(self) -> None:
        """Close connections past their deadline: one timer for all of them, ticking at least
        twice per shortest timeout."""
        limits = self.limits
        tick = min(1.0, limits.header_timeout / 2, limits.body_timeout / 2, limits.keepalive_timeout / 2)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            for connection in [c for c in self.connections if c.deadline <= now]:
                connection.overdue()

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, let answers in progress finish (up to `timeout`), close the rest.
        Connections handed to aiohttp are aiohttp's to shut down (AppRunner.cleanup)."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close_when_idle()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for connection in list(self.connections):
            connection.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        if self._server is not None:
            await self._server.wait_closed()


class OcspConnection(asyncio.Protocol):
    """One client connection while it asks only for OCSP."""

    def __init__(self, listener: PlainListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.deadline = math.inf
        self.waiting_for: Refusal | None = None  # what the deadline waits for; None: the next request
        self._admitted: asyncio.BaseTransport | None = None
        self._head: _Head | None = None  # the head of the request being read, once parsed
        self._head_size = 0
        self._pending: asyncio.Task[None] | None = None  # an answer that needs I/O
        self._write_paused = False
        self._closing = False

    # -- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self.listener.guard.admit(transport):
            return  # answered 503 and closed
        self._admitted = transport
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.listener.connections.add(self)
        self._expect(Refusal.HEADER_TIMEOUT)  # the first request's head, from the connection's start

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        if not self.buffer and self._pending is None and self.waiting_for is None:
            self._expect(Refusal.HEADER_TIMEOUT)
        self.buffer += data
        self._serve()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connections.discard(self)
        if self._admitted is not None:
            self.listener.guard.release(self._admitted)
        if self._pending is not None:
            self._pending.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._serve()

    # -- the request loop -------------------------------------------------------------------------
    def _serve(self) -> None:
        """Answer every complete request in the buffer, in order, until one needs I/O."""
        transport = self.transport
        consumed = False
        while self.buffer and transport is not None and not transport.is_closing():
            if self._pending is not None or self._write_paused:
                if len(self.buffer) > MAX_BUFFERED:
                    transport.pause_reading()
                break
            if self._head is None and not self._read_head():
                if self.transport is None:
                    return  # handed off
                break
            head = self._head
            assert head is not None
            end = self._head_size + head.content_length
            if len(self.buffer) < end:
                break
            body = bytes(self.buffer[self._head_size : end])
            if body:
                self._feed(body)
            if not head.complete:
                self._hand_off()
                return
            del self.buffer[:end]
            self._head = None
            consumed = True
            self._answer(head, body)
        if consumed and self._pending is None:
            self._restart_clock()
        if self._head is not None and self.waiting_for is not Refusal.BODY_TIMEOUT:
            self._expect(Refusal.BODY_TIMEOUT)  # a head is in and its body is not: from now on

    def _restart_clock(self) -> None:
        """A new deadline from now: for the head already begun, or for the next request."""
        self._expect(Refusal.HEADER_TIMEOUT if self.buffer else None)

    def _expect(self, waiting_for: Refusal | None) -> None:
        """Start the clock for a head, a body, or (None) an idle wait for the next request."""
        limits = self.listener.limits
        if waiting_for is Refusal.HEADER_TIMEOUT:
            seconds = limits.header_timeout
        elif waiting_for is Refusal.BODY_TIMEOUT:
            seconds = limits.body_timeout
        else:
            seconds = limits.keepalive_timeout
        self.waiting_for = waiting_for
        self.deadline = time.monotonic() + seconds

    def overdue(self) -> None:
        """The sweeper found the deadline passed: close; a slow head or body is the client's fault."""
        if self.waiting_for is not None and self.transport is not None:
            limits = self.listener.limits
            if self.waiting_for is Refusal.HEADER_TIMEOUT:
                detail = f"no complete request head within {limits.header_timeout:g} s (header_timeout_seconds)"
            else:
                detail = f"request body incomplete after {limits.body_timeout:g} s (body_timeout_seconds)"
            peer = self.transport.get_extra_info("peername")
            self.listener.guard.refused(self.waiting_for, peer[0] if isinstance(peer, tuple) else None, detail)
        self.close()

    def _read_head(self) -> bool:
        """Parse the next request's head once it is all here; hand off what is not ours."""
        wanted = _ours(self.buffer)
        if wanted is None:
            return False  # too few bytes to tell
        if not wanted:
            self._hand_off()
            return False
        end = self.buffer.find(b"\r\n\r\n", 0, MAX_HEAD)
        if end < 0:
            if len(self.buffer) >= MAX_HEAD:
                self._hand_off()
            return False
        head = self._head = _Head()
        self._head_size = end + 4
        self._feed(bytes(self.buffer[: self._head_size]))
        path = head.url.partition(b"?")[0]
        post_elsewhere = head.method == b"POST" and path not in (PREFIX, PREFIX + b"/")
        if (
            self._head is None  # llhttp refused it
            or head.handed_off
            or head.content_length > self.listener.max_body
            or post_elsewhere
        ):
            self._hand_off()
            return False
        return True

    def _feed(self, data: bytes) -> None:
        assert self._head is not None
        try:
            self._head.parser.feed_data(data)
        except httptools.HttpParserError:
            self._head = None

    def _answer(self, head: _Head, body: bytes) -> None:
        ocsp = self.listener.ocsp
        get = head.method == b"GET"
        keep_alive = head.keep_alive
        if get:
            path = unquote(head.url.partition(b"?")[0].decode("latin-1"))[len(PREFIX) :]
            request: bytes | str = path or "/"
        else:
            request = body
        method = "GET" if get else "POST"
        if self.listener.access is not None:
            head.started = self.listener.access.started()
        try:
            now = ocsp.answer_now(request, get=get, if_none_match=head.if_none_match)
        except Exception as exc:
            self.listener.failures.record("ocsp", f"{method} on the fast path", exc)
            now = _INTERNAL_ERROR
        if isinstance(now, WireResponse):
            self._write(now, head, method, keep_alive)
            return
        self.deadline = math.inf  # our turn to answer, not the client's
        self.waiting_for = None
        later = ocsp.answer_later(now, get=get, if_none_match=head.if_none_match)
        self._pending = asyncio.ensure_future(self._finish(later, head, method, keep_alive))

    async def _finish(self, answer: Awaitable[WireResponse], head: _Head, method: str, keep_alive: bool) -> None:
        try:
            response = await answer
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.listener.failures.record("ocsp", f"{method} on the fast path", exc)
            response = _INTERNAL_ERROR
        self._pending = None
        self._write(response, head, method, keep_alive)
        if self.transport is not None and not self.transport.is_closing():
            self._restart_clock()
            self.transport.resume_reading()
            self._serve()

    def _write(self, response: WireResponse, head: _Head, method: str, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        keep_alive = keep_alive and not self._closing and response.status != 500
        access = self.listener.access
        if access is not None:
            response, request_id = access.named(response)
        data = render(response, head.version, keep_alive, self.listener.date.now())
        transport.write(data)
        self.listener.count(method, response.status)
        if access is not None:
            access.answered(method, head.url, response.status, len(data), head.started, request_id, transport)
        if not keep_alive:
            transport.close()

    # -- leaving ---------------------------------------------------------------------------------
    def _hand_off(self) -> None:
        """Give the connection, from the current request on, to aiohttp's protocol."""
        transport = self.transport
        if transport is None:
            return
        self.transport = None
        self.listener.connections.discard(self)
        protocol = self.listener.aiohttp_protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        transport.resume_reading()
        data, self.buffer = bytes(self.buffer), bytearray()
        if data:
            protocol.data_received(data)

    def close_when_idle(self) -> None:
        self._closing = True
        if self._pending is None:
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _ours(buffer: bytearray) -> bool | None:
    """Whether the request at the start of the buffer is POST/GET /ocsp[/...]; None: can't tell yet."""
    for start in _METHODS:
        size = len(start)
        if buffer.startswith(start):
            return None if len(buffer) == size else buffer[size] in b" /?"
        if len(buffer) < size and start.startswith(buffer):
            return None
    return False


def render(response: WireResponse, version: str, keep_alive: bool, date: bytes) -> bytes:
    """Status line, headers and body, as HTTP/1.0 or HTTP/1.1 like the request."""
    reason = HTTPStatus(response.status).phrase
    lines = [f"HTTP/{version} {response.status} {reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers.items()]
    if response.status != 304:
        lines.append(f"Content-Length: {len(response.body)}")
    if version == "1.0" and keep_alive:
        lines.append("Connection: keep-alive")
    elif version != "1.0" and not keep_alive:
        lines.append("Connection: close")
    head = "\r\n".join(lines).encode("latin-1")
    return head + b"\r\nDate: " + date + b"\r\n\r\n" + response.body
