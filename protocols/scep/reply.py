"""CertRep (RFC 8894 §3.3.2): the one answer to every PKIMessage, signed by the RA.

recipientNonce repeats the request's senderNonce, senderNonce is fresh, transactionID the same.
SUCCESS carries a degenerate SignedData (§3.4: the certificate, or a CRL, with the issuing
chain when the profile says so) enveloped to the certificate that signed the request, in the
request's own content cipher; FAILURE carries failInfo and failInfoText; PENDING nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.cms import ContentCipher, certs_only, envelope, sign_data
from ca.cms.scep import NONCE_BYTES, FailInfo, MessageType, PkiStatus, scep_attributes
from ca.interface import RegistrationAuthority
from protocols.base import WireResponse

PKI_MESSAGE = "application/x-pki-message"
MAX_FAIL_TEXT = 200  # failInfoText is for logs: a bounded line, not the whole story


def degenerate_crl(crl: x509.CertificateRevocationList) -> bytes:
    """A SignedData with no signers and one CRL (GetCRL's answer, §3.3.5)."""
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": cms.DigestAlgorithms([]),
            "encap_content_info": {"content_type": "data"},
            "crls": [cms.RevocationInfoChoice.load(crl.public_bytes(Encoding.DER))],
            "signer_infos": cms.SignerInfos([]),
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


class CertRepWriter:
    """Signs CertReps with one RA for requests that asked in ``digest`` and ``cipher``."""

    def __init__(self, ra: RegistrationAuthority) -> None:
        self.ra = ra

    async def _signed(
        self,
        *,
        transaction_id: str,
        recipient_nonce: bytes | None,
        status: PkiStatus,
        digest: str,
        content: bytes = b"",
        fail_info: FailInfo | None = None,
        fail_text: str | None = None,
    ) -> WireResponse:
        attributes = scep_attributes(
            message_type=MessageType.CERT_REP,
            transaction_id=transaction_id,
            sender_nonce=os.urandom(NONCE_BYTES),
            recipient_nonce=recipient_nonce,
            pki_status=status,
            fail_info=fail_info,
            fail_info_text=fail_text[:MAX_FAIL_TEXT] if fail_text is not None else None,
        )
        der = await sign_data(self.ra.signer, self.ra.certificate, content, digest=digest, attributes=attributes)
        return WireResponse(200, {"Content-Type": PKI_MESSAGE}, der)

    async def success(
        self,
        *,
        transaction_id: str,
        recipient_nonce: bytes,
        digest: str,
        cipher: ContentCipher,
        recipient: x509.Certificate,
        certificates: Sequence[x509.Certificate] = (),
        crl: x509.CertificateRevocationList | None = None,
    ) -> WireResponse:
        """SUCCESS: the certificates (or the CRL) enveloped to ``recipient``."""
        inner = degenerate_crl(crl) if crl is not None else certs_only(certificates)
        return await self._signed(
            transaction_id=transaction_id,
            recipient_nonce=recipient_nonce,
            status=PkiStatus.SUCCESS,
            digest=digest,
            content=envelope(inner, recipient, cipher=cipher),
        )

    async def failure(
        self, *, transaction_id: str, recipient_nonce: bytes | None, digest: str, fail_info: FailInfo, text: str
    ) -> WireResponse:
        return await self._signed(
            transaction_id=transaction_id,
            recipient_nonce=recipient_nonce,
            status=PkiStatus.FAILURE,
            digest=digest,
            fail_info=fail_info,
            fail_text=text,
        )

    async def pending(self, *, transaction_id: str, recipient_nonce: bytes, digest: str) -> WireResponse:
        return await self._signed(
            transaction_id=transaction_id, recipient_nonce=recipient_nonce, status=PkiStatus.PENDING, digest=digest
        )
