"""CMP's way of saying no (RFC 9810 §5.2.3): an error message whose PKIFailureInfo sets one bit.

Everything in protocols/cmp/ that refuses raises `CmpFailure`; a refusal from the core
(`CAError`) becomes one through `failure_for`, the single table from the core's reasons to
failInfo bits. Nothing else in the folder chooses a bit for a core refusal.
"""

from __future__ import annotations

import enum

from ca.errors import CAError, FailureReason


class FailInfo(enum.IntEnum):
    """PKIFailureInfo bit positions (RFC 9810 §5.2.3), named as the RFC names them."""

    badAlg = 0
    badMessageCheck = 1
    badRequest = 2
    badTime = 3
    badCertId = 4
    badDataFormat = 5
    wrongAuthority = 6
    incorrectData = 7
    missingTimeStamp = 8
    badPOP = 9
    certRevoked = 10
    certConfirmed = 11
    wrongIntegrity = 12
    badRecipientNonce = 13
    timeNotAvailable = 14
    unacceptedPolicy = 15
    unacceptedExtension = 16
    addInfoNotAvailable = 17
    badSenderNonce = 18
    badCertTemplate = 19
    signerNotTrusted = 20
    transactionIdInUse = 21
    unsupportedVersion = 22
    notAuthorized = 23
    systemUnavail = 24
    systemFailure = 25
    duplicateCertReq = 26


class CmpFailure(Exception):
    """A refusal in CMP's terms: the failInfo bits to set and the text for statusString.

    ``peer_caused`` False means the text describes our own fault and must not reach the
    peer (the reply then carries a generic sentence, as `CAError.public_detail` does).
    """

    def __init__(self, fail_info: FailInfo, text: str, *, peer_caused: bool = True) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text
        self.peer_caused = peer_caused

    def public_text(self) -> str:
        if self.peer_caused:
            return self.text
        return "the CA cannot process this request now; try again later"


FAIL_INFO_FOR: dict[FailureReason, FailInfo] = {
    FailureReason.MALFORMED: FailInfo.badRequest,
    FailureReason.BAD_CSR: FailInfo.badCertTemplate,
    FailureReason.BAD_ALGORITHM: FailInfo.badAlg,
    FailureReason.BAD_PUBLIC_KEY: FailInfo.badCertTemplate,
    FailureReason.BAD_SIGNATURE: FailInfo.badPOP,  # ca/crmf.py: every POP refusal
    FailureReason.BAD_TIME: FailInfo.badTime,
    FailureReason.UNAUTHORIZED: FailInfo.notAuthorized,
    FailureReason.REJECTED_BY_POLICY: FailInfo.badCertTemplate,
    FailureReason.UNKNOWN_CERTIFICATE: FailInfo.badCertId,
    FailureReason.ALREADY_REVOKED: FailInfo.certRevoked,
    FailureReason.RATE_LIMITED: FailInfo.systemUnavail,
    FailureReason.UNAVAILABLE: FailInfo.systemUnavail,
    FailureReason.INTERNAL: FailInfo.systemFailure,
}


def failure_for(error: CAError) -> CmpFailure:
    """The CMP refusal a core refusal stands for."""
    return CmpFailure(FAIL_INFO_FOR[error.reason], error.detail, peer_caused=error.peer_caused)


def bad_data_format(text: str) -> CmpFailure:
    """The one answer to bytes that are not a well-formed, bounded DER PKIMessage."""
    return CmpFailure(FailInfo.badDataFormat, text)


def bad_message_check(text: str) -> CmpFailure:
    """The one answer to a protection that does not verify (CMP-02)."""
    return CmpFailure(FailInfo.badMessageCheck, text)
