"""Why the core refused something, in protocol-neutral words.

Each protocol maps `FailureReason` to its own wire form (ACME problem type,
EST status, SCEP failInfo, CMP PKIFailureInfo) in its ``errors.py``.
"""

from __future__ import annotations

import enum


class FailureReason(enum.Enum):
    MALFORMED = "malformed"
    BAD_CSR = "bad_csr"
    BAD_ALGORITHM = "bad_algorithm"
    BAD_PUBLIC_KEY = "bad_public_key"
    BAD_SIGNATURE = "bad_signature"
    BAD_TIME = "bad_time"
    UNAUTHORIZED = "unauthorized"
    REJECTED_BY_POLICY = "rejected_by_policy"
    UNKNOWN_CERTIFICATE = "unknown_certificate"
    ALREADY_REVOKED = "already_revoked"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class CAError(Exception):
    """A refusal. ``peer_caused`` says whether the detail may be shown to the peer."""

    reason: FailureReason = FailureReason.INTERNAL
    peer_caused: bool = True

    def __init__(self, detail: str, reason: FailureReason | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason

    def public_detail(self) -> str:
        """What the peer may read: our own faults are not described to outsiders."""
        if self.peer_caused:
            return self.detail
        return "the CA cannot process this request now; try again later"


class PolicyViolation(CAError):
    """A profile rule refused the request; the detail names the profile and rule."""

    reason = FailureReason.REJECTED_BY_POLICY


class BadRequest(CAError):
    reason = FailureReason.MALFORMED


class RejectedValue(BadRequest):
    """The store refused a value a write carried (wrong type, too long, out of range): running
    the write again cannot help, so it is the request's fault (4xx), not "try later". The
    detail never quotes the value or the driver's message (either may hold a secret)."""

    def __init__(self, detail: str = "a value in this request is of the wrong type, too long or out of range") -> None:
        super().__init__(detail)


class NotAuthorized(CAError):
    reason = FailureReason.UNAUTHORIZED


class UnknownCertificate(CAError):
    reason = FailureReason.UNKNOWN_CERTIFICATE


class AlreadyRevoked(CAError):
    reason = FailureReason.ALREADY_REVOKED


class SignerUnavailable(CAError):
    """The key backend (HSM, key file) cannot sign now. Retry later."""

    reason = FailureReason.UNAVAILABLE
    peer_caused = False


class IssuerUnavailable(CAError):
    """The issuing CA cannot issue: revoked, expired, not yet active, or its key not loaded.
    Nothing is signed; an operator has to act (activate or import another generation)."""

    reason = FailureReason.UNAVAILABLE


class IssuerRetired(IssuerUnavailable):
    """The generation asked to sign was replaced a moment ago (its successor's activation time
    has come): the core decides the request again against the generation now active."""


class StoreUnavailable(CAError):
    """The database cannot be reached or failed mid-transaction. Retry later."""

    reason = FailureReason.UNAVAILABLE
    peer_caused = False


class CopyRefused(CAError):
    """`tetra db copy` did not happen (bad URL, wrong schema, a destination with rows, a copied
    row or audit chain that does not verify); the destination was left as it was."""

    peer_caused = False


class InternalError(CAError):
    reason = FailureReason.INTERNAL
    peer_caused = False


class ConfigError(Exception):
    """A config or profile file is wrong; the message names the file and key."""


class UsageError(ConfigError):
    """A command's arguments are wrong (a bad --ttl, a profile that does not exist): what a
    protocol's CLI command raises where argparse cannot check. `tetra` prints it as one line and
    exits 2, as for a usage error, rather than 1, which says the CA refused a request."""
