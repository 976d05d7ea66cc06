"""What the server does with an exception no handler expected (DOS-15).

Handlers answer every refusal they foresee in their protocol's words; an exception that
escapes one is a bug reached by this request. It must not become a way to flood the log or to
get an answer outside the protocol: 700 requests to ``/acme/order/²`` once wrote 700
tracebacks in 1.1 s and 700 plain-text 500s, and no source was ever slowed down. So:

- the client gets the protocol's own error for a 500 (``ProtocolSpec.http_error``: an ACME
  ``serverInternal`` problem, the API's JSON, an OCSP ``internalError``; plain text for a
  protocol without one, such as the CRL);
- each request logs one line (protocol, request, source, exception, the code line it came
  from); the traceback is added at most once a minute per site (file:line and exception type),
  so a flood that hits one bug writes one traceback, not one per request;
- the request counts against its source's refusal budget (``ProtocolSpec.count_refusal``), so a
  source that keeps hitting the bug is answered 429 unread like any other that keeps being
  refused (ACME's refusals_per_minute, LOAD-05);
- ``tetra_errors_total{reason="unexpected"}`` counts it, for an alert.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp import web

from protocols.base import ProtocolSpec, WireRequest, WireResponse
from server.metrics import Metrics

log = logging.getLogger("tetra.http")

TRACEBACK_EVERY = 60.0  # seconds between two tracebacks from the same site
MAX_SITES = 1024  # sites remembered; code has few, but an exception type per site is not bounded
INTERNAL_ERROR = "internal server error"
MAX_MESSAGE = 200  # characters of the exception's text in the log line (it may quote the request)


class UnexpectedFailures:
    """One per application: the record of which sites logged a traceback when."""

    def __init__(self, metrics: Metrics | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._metrics = metrics
        self._clock = clock
        self._last_traceback: OrderedDict[str, float] = OrderedDict()

    def answer(self, spec: ProtocolSpec, handlers: Any, request: WireRequest, exc: Exception) -> WireResponse:
        """Log and count the failure, charge the source, and word the 500 as the protocol does."""
        where = f"{request.method} {spec.prefix}{request.path[:100]} from {request.remote or '?'}"
        self.record(spec.name, where, exc)
        spec.count_refusal(handlers, request)
        return internal_error(spec)

    def record(self, protocol: str, where: str, exc: BaseException) -> None:
        """One log line; its traceback only if this site has not logged one within the minute."""
        site = _site(exc)
        key = f"{site} {type(exc).__name__}"
        now = self._clock()
        last = self._last_traceback.get(key)
        with_traceback = last is None or now - last >= TRACEBACK_EVERY
        if with_traceback:
            self._last_traceback[key] = now
            self._last_traceback.move_to_end(key)
            while len(self._last_traceback) > MAX_SITES:
                self._last_traceback.popitem(last=False)
        log.error(
            "%s %s failed unexpectedly: %s %r at %s%s",
            protocol,
            where,
            type(exc).__name__,
            str(exc)[:MAX_MESSAGE],
            site,
            "" if with_traceback else " (traceback logged within the last minute)",
            exc_info=exc if with_traceback else None,
        )
        if self._metrics is not None:
            self._metrics.errors.labels(protocol, "unexpected").inc()


def internal_error(spec: ProtocolSpec) -> WireResponse:
    """A 500 in the protocol's words, or plain text if it has none."""
    if spec.http_error is not None:
        return spec.http_error(500, INTERNAL_ERROR)
    return WireResponse.text(500, INTERNAL_ERROR + "\n")


def _site(exc: BaseException) -> str:
    """Where the exception was raised: the innermost frame's file:line."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


FAILURES = web.AppKey("unexpected_failures", UnexpectedFailures)
