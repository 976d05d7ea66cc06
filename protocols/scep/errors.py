"""SCEP's two ways of saying no.

A PKIMessage that could be read is answered with a signed CertRep FAILURE (RFC 8894 §3.3.2):
`ScepFailure` carries the failInfo and a failInfoText, and `failure_for` turns any core refusal
(`CAError`) into one through the single table `FAIL_INFO_FOR`. What is not a SCEP message at all
(an unknown operation, garbage in ``message=``, a body over the limit) has nobody to sign a reply
to: it gets an HTTP 4xx in plain text (SCEP-22), the way `http_error` words the server's own.
"""

from __future__ import annotations

from ca.cms.scep import FailInfo
from ca.errors import CAError, FailureReason
from protocols.base import WireResponse

FAIL_INFO_FOR: dict[FailureReason, FailInfo] = {
    FailureReason.MALFORMED: FailInfo.BAD_REQUEST,
    FailureReason.BAD_CSR: FailInfo.BAD_REQUEST,
    FailureReason.BAD_ALGORITHM: FailInfo.BAD_ALG,
    FailureReason.BAD_PUBLIC_KEY: FailInfo.BAD_REQUEST,
    FailureReason.BAD_SIGNATURE: FailInfo.BAD_MESSAGE_CHECK,
    FailureReason.BAD_TIME: FailInfo.BAD_TIME,
    FailureReason.UNAUTHORIZED: FailInfo.BAD_REQUEST,
    FailureReason.REJECTED_BY_POLICY: FailInfo.BAD_REQUEST,
    FailureReason.UNKNOWN_CERTIFICATE: FailInfo.BAD_CERT_ID,
    FailureReason.ALREADY_REVOKED: FailInfo.BAD_REQUEST,
    FailureReason.RATE_LIMITED: FailInfo.BAD_REQUEST,
    FailureReason.UNAVAILABLE: FailInfo.BAD_REQUEST,
    FailureReason.INTERNAL: FailInfo.BAD_REQUEST,
}


class ScepFailure(Exception):
    """A refusal a CertRep FAILURE carries: failInfo and a failInfoText for the operator's logs."""

    def __init__(self, fail_info: FailInfo, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


def bad_request(text: str) -> ScepFailure:
    return ScepFailure(FailInfo.BAD_REQUEST, text)


def failure_for(error: CAError | ScepFailure) -> ScepFailure:
    """The CertRep FAILURE for any refusal (the core's detail only when the peer may read it)."""
    if isinstance(error, ScepFailure):
        return error
    return ScepFailure(FAIL_INFO_FOR.get(error.reason, FailInfo.BAD_REQUEST), error.public_detail())


class NotScep(Exception):
    """Input that is no SCEP message: answered with an HTTP status in plain text (SCEP-22)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def http_error(status: int, reason: str) -> WireResponse:
    """What the server answers under a SCEP mount when no handler does (404, 405, 413) or a
    handler failed unexpectedly (500): plain text, as every non-SCEP refusal."""
    return WireResponse.text(status, f"{reason}\n")
