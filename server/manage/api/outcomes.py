"""How an enrolment's outcome is answered, wherever one is made or polled (POST /certificates,
/renew, /reissue, the first API's /enroll, GET /requests/{id}, an approval): the certificate
with its chain, or 202 with the request to poll and when."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from ca.enrollment import EnrollmentOutcome, Pending
from server.manage.endpoint import Reply

ISSUED: dict[str, Any] = {
    "type": "object",
    "required": ["serial", "issuer", "certificate", "chain"],
    "properties": {
        "serial": {"type": "string", "description": "hexadecimal"},
        "issuer": {"type": "string"},
        "certificate": {"type": "string", "description": "PEM"},
        "chain": {"type": "string", "description": "PEM, the issuing CA first"},
    },
}
HELD: dict[str, Any] = {"type": "object", "required": ["request_id"], "properties": {"request_id": {"type": "integer"}}}


def outcome_reply(outcome: EnrollmentOutcome, *, issued_status: int) -> Reply:
    """An enrollment as enroll and poll answer it: the certificate with its chain, or 202 with
    the request to poll and when (a profile that holds requests for an operator's approval)."""
    if isinstance(outcome, Pending):
        return Reply(202, {"request_id": outcome.request_id}, headers={"Retry-After": str(outcome.retry_after)})
    return Reply(
        issued_status,
        {
            "serial": format(outcome.certificate.serial_number, "x"),
            "issuer": outcome.issuer,
            "certificate": outcome.certificate.public_bytes(Encoding.PEM).decode(),
            "chain": "".join(c.public_bytes(Encoding.PEM).decode() for c in outcome.chain),
        },
    )
