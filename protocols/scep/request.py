"""One PKIMessage (RFC 8894 §3.2) read: signature verified, envelope decrypted, attributes checked.

`open_message` does the work and returns a frozen `ScepRequest`. When it refuses, `read_header`
takes the transactionID and senderNonce from the unverified message, only so that the refusal
can be a CertRep FAILURE (§3.3.2 echoes both), or an HTTP 400 for what is no SCEP message at
all. Each refusal carries the failInfo RFC 8894 names: badAlg for an algorithm the profile does
not allow (SCEP-02), badMessageCheck for a signature or an envelope that does not check out
(SCEP-09: one answer for every decryption failure, whatever went wrong), badRequest for the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from ca.cms import ContentCipher, decrypt_enveloped, parse_signed_data
from ca.cms.enveloped import envelope_cipher
from ca.cms.scep import FailInfo, MessageType, ScepAttributes, read_scep_attributes
from ca.cms.signed import DIGESTS
from ca.cms.verify import unverified_signed_attributes
from ca.errors import CAError, FailureReason
from ca.interface import RegistrationAuthority
from protocols.scep.errors import NotScep, ScepFailure, bad_request, failure_for

UNDECRYPTABLE = "the pkcsPKIEnvelope cannot be decrypted with the RA key"  # SCEP-09: one text for all


@dataclass(frozen=True)
class ScepRequest:
    """A PKIMessage whose signature verified and whose envelope the RA opened."""

    message_type: MessageType
    transaction_id: str
    sender_nonce: bytes
    signer: x509.Certificate  # the certificate that signed it (self-signed for a first PKCSReq)
    content: bytes  # the decrypted envelope: a CSR, IssuerAndSubject or IssuerAndSerialNumber
    cipher: ContentCipher  # the envelope's content cipher: the reply uses the same
    digest: str  # the signer's digest ("sha256"...): the reply signs with the same


def read_header(der: bytes, max_bytes: int) -> ScepAttributes:
    """messageType, transactionID and the nonces, unverified; NotScep (HTTP 400) when the body is
    no SignedData with SCEP attributes: there is nobody to address a CertRep to."""
    try:
        return read_scep_attributes(unverified_signed_attributes(der, max_bytes=max_bytes))
    except CAError as exc:
        raise NotScep(400, f"not a SCEP PKIMessage: {exc.detail}") from None


async def open_message(der: bytes, ra: RegistrationAuthority, *, legacy: bool, max_bytes: int) -> ScepRequest:
    """Verify the signature, read the SCEP attributes it covers, then decrypt the envelope; a
    CAError or ScepFailure for every refusal (the caller then reads the header to answer it)."""
    try:
        signed = parse_signed_data(der, max_bytes=max_bytes, allow_sha1=legacy, allow_md5=legacy)
    except CAError as exc:
        raise failure_for(exc) from None
    attributes = read_scep_attributes(signed.signed_attributes)  # CAError (MALFORMED) if not SCEP's
    if attributes.sender_nonce is None:
        raise bad_request("senderNonce is missing (RFC 8894 §3.2.1.5)")
    try:
        cipher = envelope_cipher(signed.content, max_bytes=max_bytes)
    except CAError as exc:
        raise failure_for(exc) from None
    if cipher.legacy and not legacy:
        raise ScepFailure(FailInfo.BAD_ALG, f"{cipher.name} is allowed only on a legacy profile")
    try:
        content = await decrypt_enveloped(
            signed.content, ra.decrypter, ra.certificate, max_bytes=max_bytes, allow_des3=legacy
        )
    except CAError as exc:
        if exc.reason is FailureReason.BAD_ALGORITHM:
            raise failure_for(exc) from None
        raise ScepFailure(FailInfo.BAD_MESSAGE_CHECK, UNDECRYPTABLE) from None
    return ScepRequest(
        message_type=attributes.message_type,
        transaction_id=attributes.transaction_id,
        sender_nonce=attributes.sender_nonce,
        signer=signed.signer_certificate,
        content=content,
        cipher=cipher,
        digest=signed.digest_algorithm if signed.digest_algorithm in DIGESTS else "sha256",
    )
