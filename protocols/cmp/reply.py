"""Reply PKIMessages (RFC 9810 §5.1, RFC 9483 §3): header, body, protection, extraCerts.

The header answers the request it replies to: pvno 2 (RFC 9483 §3.1: 3 only where
EnvelopedData is used, which we never send), sender the CA/RA name, recipient the request's
sender as received, transactionID copied, a fresh 16-octet senderNonce, recipNonce the
request's senderNonce, implicitConfirm only when the request asked and the caller grants.
A reply is protected like the request (`MacProtection` with the key `verify_mac` derived)
or signed by the CMP signing key (`SignatureProtection`, its chain in extraCerts); an error
to a request we could not authenticate may go unprotected (RFC 9483 §3.6.4).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from ca.der import oid, tlv
from ca.interface import Signer
from protocols.cmp.der import bit_string, explicit, integer, octet_string, sequence
from protocols.cmp.message import ID_IT_IMPLICIT_CONFIRM, PkiMessage
from protocols.cmp.protection import MacKey, sign_protection, signature_algorithm

REPLY_PVNO = 2
NONCE_OCTETS = 16
_NULL_DN_SENDER = explicit(4, sequence())  # directoryName with an empty Name


@dataclass(frozen=True)
class MacProtection:
    """Protect with the request's MAC scheme and secret; ``sender_kid`` names the secret."""

    key: MacKey
    sender_kid: bytes | None


@dataclass(frozen=True)
class SignatureProtection:
    """Sign with ``signer``, whose certificate is ``certificate``; ``chain`` follows it in
    extraCerts (RFC 9483 §3.3: the protection certificate first, then its chain)."""

    signer: Signer
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()
    hash_name: str = "sha256"


Protection = MacProtection | SignatureProtection | None


def _generalized_time(when: dt.datetime) -> bytes:
    return tlv(0x18, when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%SZ").encode())


def _subject_key_id(certificate: x509.Certificate) -> bytes | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return None


def reply_header(
    request: PkiMessage | None,
    sender: x509.Name,
    *,
    protection_alg: bytes | None,
    sender_kid: bytes | None,
    implicit_confirm: bool = False,
    now: dt.datetime | None = None,
    sender_nonce: bytes | None = None,
) -> bytes:
    """PKIHeader DER answering ``request`` (None: a message we could not decode at all)."""
    fields = [
        integer(REPLY_PVNO),
        explicit(4, sender.public_bytes()),
        request.sender_der if request is not None else _NULL_DN_SENDER,
        explicit(0, _generalized_time(now or dt.datetime.now(dt.UTC))),
    ]
    if protection_alg is not None:
        fields.append(explicit(1, protection_alg))
    if sender_kid is not None:
        fields.append(explicit(2, octet_string(sender_kid)))
    transaction_id = request.transaction_id if request is not None else None
    if transaction_id is not None:
        fields.append(explicit(4, octet_string(transaction_id)))
    fields.append(explicit(5, octet_string(sender_nonce or secrets.token_bytes(NONCE_OCTETS))))
    recip_nonce = request.sender_nonce if request is not None else None
    if recip_nonce is not None:
        fields.append(explicit(6, octet_string(recip_nonce)))
    if implicit_confirm and request is not None and request.implicit_confirm:
        fields.append(explicit(8, sequence(sequence(oid(ID_IT_IMPLICIT_CONFIRM), b"\x05\x00"))))
    return sequence(*fields)


async def build_reply(
    request: PkiMessage | None,
    sender: x509.Name,
    body: bytes,
    protection: Protection,
    *,
    implicit_confirm: bool = False,
    now: dt.datetime | None = None,
    sender_nonce: bytes | None = None,
) -> bytes:
    """The whole reply PKIMessage (DER). ``body`` comes from `protocols.cmp.bodies`;
    ``implicit_confirm`` says whether the caller grants it (it appears only if asked)."""
    extra: list[x509.Certificate] = []
    algorithm: bytes | None = None
    kid: bytes | None = None
    hash_alg: hashes.HashAlgorithm | None = None
    if isinstance(protection, MacProtection):
        algorithm, kid = protection.key.algorithm, protection.sender_kid
    elif isinstance(protection, SignatureProtection):
        algorithm, hash_alg = signature_algorithm(protection.certificate.public_key(), protection.hash_name)
        kid = _subject_key_id(protection.certificate)
        extra = [protection.certificate, *protection.chain]
    header = reply_header(
        request,
        sender,
        protection_alg=algorithm,
        sender_kid=kid,
        implicit_confirm=implicit_confirm,
        now=now,
        sender_nonce=sender_nonce,
    )
    protected_part = sequence(header, body)
    if isinstance(protection, MacProtection):
        value = protection.key.mac(protected_part)
    elif isinstance(protection, SignatureProtection):
        value = await sign_protection(protection.signer, protected_part, hash_alg)
    else:
        return protected_part  # PKIMessage without protection: the same SEQUENCE { header, body }
    parts = [header, body, explicit(0, bit_string(value))]
    if extra:
        parts.append(explicit(1, sequence(*(cert.public_bytes(Encoding.DER) for cert in extra))))
    return sequence(*parts)
