"""Proof-of-possession linking (RFC 7030 §3.5): the CSR's challengePassword carries the base64
tls-unique of the TLS session it travels in, so a CSR cannot be replayed over another session.

tls-unique exists only up to TLS 1.2 (RFC 9266 §1); the listener offers none under TLS 1.3
(server/http.py), and a profile that requires the linking refuses TLS 1.3 clients with a
reason that says so (EST-08, docs/est.md).
"""

from __future__ import annotations

import base64
import binascii
import hmac

from cryptography import x509
from cryptography.x509.oid import AttributeOID

from protocols.est.errors import bad_request


def challenge_password(csr: x509.CertificateSigningRequest) -> bytes | None:
    try:
        return csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        return None
    except ValueError as exc:
        raise bad_request(f"the CSR's attributes cannot be parsed: {exc}") from None


def check_linked(csr: x509.CertificateSigningRequest, tls_unique: bytes | None) -> None:
    """Refuse unless the CSR's challengePassword is this session's tls-unique (base64)."""
    if tls_unique is None:
        raise bad_request(
            "this label requires proof-of-possession linking (RFC 7030 §3.5) through tls-unique, "
            "which TLS 1.3 does not define: connect with TLS 1.2"
        )
    given = challenge_password(csr)
    if given is None:
        raise bad_request("the CSR must carry this TLS session's tls-unique, base64, as challengePassword")
    try:
        value = base64.b64decode(b"".join(given.split()), validate=True)
    except (binascii.Error, ValueError):
        value = b""
    if not hmac.compare_digest(value, tls_unique):
        raise bad_request("the CSR's challengePassword is not this TLS session's tls-unique (RFC 7030 §3.5)")
