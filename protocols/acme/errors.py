"""ACME problem documents (RFC 7807, RFC 8555 §6.7): the only way this protocol says "no".

Every refusal, whether raised by our decoders (`AcmeProblem`) or by the core
(`CAError`), goes through `render_problem()`; the table below is the one place
where a core `FailureReason` becomes an ACME error type.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ca.errors import CAError, FailureReason
from protocols.base import WireResponse

NS = "urn:ietf:params:acme:error:"
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Subproblem:
    """RFC 8555 §6.7.1: one identifier's own reason inside a compound problem."""

    type: str
    detail: str
    identifier: Mapping[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": NS + self.type, "detail": self.detail}
        if self.identifier is not None:
            out["identifier"] = dict(self.identifier)
        return out


@dataclass
class AcmeProblem(Exception):
    """A refusal in ACME words; ``type`` is the short name ("badNonce")."""

    type: str
    detail: str
    status: int = 400
    subproblems: tuple[Subproblem, ...] = ()
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. "algorithms" for badSignatureAlgorithm

    def __post_init__(self) -> None:
        super().__init__(f"{self.type}: {self.detail}")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": NS + self.type, "detail": self.detail, "status": self.status}
        if self.subproblems:
            out["subproblems"] = [s.to_json() for s in self.subproblems]
        out.update(self.extra)
        return out


# FailureReason -> (ACME type, HTTP status); docs/architecture.md "Errors".
_TABLE: dict[FailureReason, tuple[str, int]] = {
    FailureReason.MALFORMED: ("malformed", 400),
    FailureReason.BAD_CSR: ("badCSR", 400),
    FailureReason.BAD_ALGORITHM: ("badCSR", 400),
    FailureReason.BAD_PUBLIC_KEY: ("badPublicKey", 400),
    FailureReason.BAD_SIGNATURE: ("badCSR", 400),
    FailureReason.BAD_TIME: ("malformed", 400),
    FailureReason.UNAUTHORIZED: ("unauthorized", 403),
    FailureReason.REJECTED_BY_POLICY: ("rejectedIdentifier", 400),
    FailureReason.UNKNOWN_CERTIFICATE: ("malformed", 404),
    FailureReason.ALREADY_REVOKED: ("alreadyRevoked", 400),
    FailureReason.RATE_LIMITED: ("rateLimited", 429),
    FailureReason.UNAVAILABLE: ("serverInternal", 503),
    FailureReason.INTERNAL: ("serverInternal", 500),
}
UNAVAILABLE_RETRY_AFTER = 30


def problem_from_ca_error(exc: CAError, *, during_finalize: bool = False) -> AcmeProblem:
    """Translate a core refusal. At finalize a policy refusal is about the CSR (badCSR),
    elsewhere about an identifier (rejectedIdentifier)."""
    kind, status = _TABLE[exc.reason]
    if during_finalize and exc.reason is FailureReason.REJECTED_BY_POLICY:
        kind = "badCSR"
    retry = UNAVAILABLE_RETRY_AFTER if exc.reason in (FailureReason.UNAVAILABLE, FailureReason.RATE_LIMITED) else None
    return AcmeProblem(kind, exc.public_detail(), status, retry_after=retry)


def problem_body(problem: AcmeProblem) -> bytes:
    return json.dumps(problem.to_json()).encode()


def render_problem(problem: AcmeProblem, headers: Mapping[str, str] | None = None) -> WireResponse:
    """The wire form of every failure; ``headers`` carries Replay-Nonce and Link."""
    out = {"Content-Type": PROBLEM_JSON, "Cache-Control": "no-store", **(headers or {}), **problem.headers}
    if problem.retry_after is not None:
        out["Retry-After"] = str(problem.retry_after)
    return WireResponse(problem.status, out, problem_body(problem))


def render_error(exc: CAError, headers: Mapping[str, str] | None = None) -> WireResponse:
    return render_problem(problem_from_ca_error(exc), headers)


# Short constructors for the common cases.
def malformed(detail: str, status: int = 400) -> AcmeProblem:
    return AcmeProblem("malformed", detail, status)


def unauthorized(detail: str) -> AcmeProblem:
    return AcmeProblem("unauthorized", detail, 403)


def not_found(detail: str = "no such resource") -> AcmeProblem:
    return AcmeProblem("malformed", detail, 404)


def http_error(status: int, reason: str) -> WireResponse:
    """What the server answers under /acme for us: before any handler runs (no such resource, a
    method the path does not take, a body over the limit) or when one failed unexpectedly (500,
    serverInternal): a problem document, as RFC 8555 §6.7 wants for every error. No nonce: no
    ACME state is reached (or it is not trusted to be)."""
    if status >= 500:
        return render_problem(AcmeProblem("serverInternal", "the server failed to process this request", status), {})
    detail = {404: "no such resource", 405: "method not allowed here", 413: "request body too large"}
    return render_problem(AcmeProblem("malformed", detail.get(status, reason), status), {})
