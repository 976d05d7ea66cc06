"""EST's way of saying no (RFC 7030 §4.2.3): an HTTP status with a plain-text reason.

Every refusal, from the core (`CAError`) or from EST itself (`EstError`), is answered through
`render_error`: one table from the core's reasons to HTTP statuses.
"""

from __future__ import annotations

from collections.abc import Mapping

from ca.errors import CAError, FailureReason
from protocols.base import WireResponse

REALM = 'Basic realm="tetra-est", charset="UTF-8"'

STATUS_FOR: dict[FailureReason, int] = {
    FailureReason.MALFORMED: 400,
    FailureReason.BAD_CSR: 400,
    FailureReason.BAD_ALGORITHM: 400,
    FailureReason.BAD_PUBLIC_KEY: 400,
    FailureReason.BAD_SIGNATURE: 400,
    FailureReason.BAD_TIME: 400,
    FailureReason.UNAUTHORIZED: 403,
    FailureReason.REJECTED_BY_POLICY: 403,
    FailureReason.UNKNOWN_CERTIFICATE: 403,
    FailureReason.ALREADY_REVOKED: 403,
    FailureReason.RATE_LIMITED: 503,
    FailureReason.UNAVAILABLE: 503,
    FailureReason.INTERNAL: 500,
}


class EstError(Exception):
    """A refusal in EST's own terms: status, reason, and any header the status needs."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def bad_request(detail: str) -> EstError:
    return EstError(400, detail)


def unauthenticated(detail: str) -> EstError:
    """401 with the Basic challenge (RFC 7030 §3.2.3): the client may retry with credentials."""
    return EstError(401, detail, {"WWW-Authenticate": REALM})


def forbidden(detail: str) -> EstError:
    return EstError(403, detail)


def not_found(detail: str) -> EstError:
    return EstError(404, detail)


def unsupported_media(detail: str) -> EstError:
    return EstError(415, detail)


def not_implemented(detail: str) -> EstError:
    return EstError(501, detail)


def render_error(error: EstError | CAError) -> WireResponse:
    if isinstance(error, EstError):
        status, detail, headers = error.status, error.detail, error.headers
    else:
        status, detail = STATUS_FOR.get(error.reason, 500), error.public_detail()
        headers = {"Retry-After": "30"} if status == 503 else {}
    return WireResponse(status, {"Content-Type": "text/plain; charset=utf-8", **headers}, f"{detail}\n".encode())


def http_error(status: int, reason: str) -> WireResponse:
    """What the server answers under /.well-known/est when no handler does (404, 405, 413) or a
    handler failed unexpectedly (500): the same plain text as every EST refusal."""
    return render_error(EstError(status, reason))
