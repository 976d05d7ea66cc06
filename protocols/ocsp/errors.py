"""OCSP's way of saying no: an unsuccessful OCSPResponse in an HTTP 200 (RFC 6960 §2.3, §4.2.1)."""

from __future__ import annotations

from ca.errors import CAError, FailureReason
from ca.revocation.model import ResponseStatus
from ca.revocation.ocsp_der import error_response
from protocols.base import WireResponse

CONTENT_TYPE = "application/ocsp-response"

STATUS_FOR: dict[FailureReason, ResponseStatus] = {
    FailureReason.MALFORMED: ResponseStatus.MALFORMED_REQUEST,
    FailureReason.BAD_ALGORITHM: ResponseStatus.MALFORMED_REQUEST,
    FailureReason.BAD_SIGNATURE: ResponseStatus.MALFORMED_REQUEST,
    FailureReason.UNAUTHORIZED: ResponseStatus.UNAUTHORIZED,
    FailureReason.UNKNOWN_CERTIFICATE: ResponseStatus.UNAUTHORIZED,
    FailureReason.RATE_LIMITED: ResponseStatus.TRY_LATER,
    FailureReason.UNAVAILABLE: ResponseStatus.TRY_LATER,
    FailureReason.INTERNAL: ResponseStatus.INTERNAL_ERROR,
}


class OcspError(Exception):
    """A request we answer with an OCSPResponseStatus instead of a status."""

    def __init__(self, status: ResponseStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def malformed(detail: str) -> OcspError:
    return OcspError(ResponseStatus.MALFORMED_REQUEST, detail)


def render_status(status: ResponseStatus) -> WireResponse:
    return WireResponse(200, {"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"}, error_response(status))


def render_error(error: OcspError | CAError) -> WireResponse:
    """Every refusal goes through here: one table from reasons to OCSPResponseStatus."""
    if isinstance(error, OcspError):
        return render_status(error.status)
    return render_status(STATUS_FOR.get(error.reason, ResponseStatus.INTERNAL_ERROR))


def http_error(status: int, reason: str) -> WireResponse:
    """What the server answers under /ocsp for us: an OCSP internalError when a handler failed
    unexpectedly (RFC 6960 §2.3); plain HTTP for no such path or method, or a body over the
    limit, which are not OCSP requests at all."""
    if status >= 500:
        return render_status(ResponseStatus.INTERNAL_ERROR)
    return WireResponse.text(status, f"{reason}\n")
