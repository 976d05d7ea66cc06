"""CRL publication errors: plain HTTP, since a CRL fetch has no protocol envelope."""

from __future__ import annotations

from ca.errors import CAError, FailureReason
from protocols.base import WireResponse

STATUS_FOR: dict[FailureReason, int] = {
    FailureReason.MALFORMED: 404,
    FailureReason.UNKNOWN_CERTIFICATE: 404,
    FailureReason.UNAVAILABLE: 503,
    FailureReason.RATE_LIMITED: 503,
}


class CrlNotFound(Exception):
    """No such CRL: unknown issuer, partition or name."""


def not_found(detail: str) -> WireResponse:
    return WireResponse.text(404, f"{detail}\n")


def render_error(error: CAError) -> WireResponse:
    status = STATUS_FOR.get(error.reason, 500)
    response = WireResponse.text(status, f"{error.public_detail()}\n")
    if status == 503:
        return WireResponse(503, {**response.headers, "Retry-After": "30"}, response.body)
    return response
