"""Shared by the OCSP and CRL tests: issuing, building requests, checking responses and CRLs."""

from __future__ import annotations

import datetime as dt
from functools import partial
from typing import Any

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Issued, Requester
from ca.revocation.model import CertId, StatusQuery
from ca.revocation.settings import CrlSettings, OcspSettings
from ca.service import CertificateAuthority
from ca.store.db import Tx
from tests.helpers import enroll, make_csr
from tests.pkilint_check import assert_crl_lints_clean, assert_ocsp_lints_clean

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)
HASHES: dict[str, hashes.HashAlgorithm] = {"sha1": hashes.SHA1(), "sha256": hashes.SHA256()}


def ocsp_settings(**overrides: Any) -> OcspSettings:
    """Test defaults: a country for the responder subject (BR lint), no cache warm-up."""
    values: dict[str, Any] = {"responder_country": "US", "preload": False}
    values.update(overrides)
    return OcspSettings(**values)


def crl_settings(**overrides: Any) -> CrlSettings:
    values: dict[str, Any] = {"lint": "cabf"}
    values.update(overrides)
    return CrlSettings(**values)


async def issue(ca: CertificateAuthority, name: str = "www.example.com") -> Issued:
    csr, _ = make_csr([name])
    outcome = await enroll(ca, enrollment_from_csr(csr, protocol="cli", profile_name="tls-server", requester=OPERATOR))
    assert isinstance(outcome, Issued)
    return outcome


def cert_id(cert: x509.Certificate, issuer: x509.Certificate, hash_name: str = "sha1") -> CertId:
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, HASHES[hash_name]).build()
    return CertId(hash_name, request.issuer_name_hash, request.issuer_key_hash, request.serial_number)


def query(
    cert: x509.Certificate, issuer: x509.Certificate, hash_name: str = "sha1", nonce: bytes | None = None
) -> StatusQuery:
    wrapped = None if nonce is None else b"\x04" + bytes((len(nonce),)) + nonce
    return StatusQuery((cert_id(cert, issuer, hash_name),), wrapped)


def request_der(
    cert: x509.Certificate, issuer: x509.Certificate, hash_name: str = "sha1", nonce: bytes | None = None
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, HASHES[hash_name])
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(Encoding.DER)


def multi_request_der(cert_ids: list[CertId], nonce: bytes | None = None) -> bytes:
    """A request naming several certificates, which cryptography's builder cannot make."""
    oids = {"sha1": "1.3.14.3.2.26", "sha256": "2.16.840.1.101.3.4.2.1"}
    request_list = [
        {
            "req_cert": {
                "hash_algorithm": {"algorithm": oids[c.hash_alg]},
                "issuer_name_hash": c.issuer_name_hash,
                "issuer_key_hash": c.issuer_key_hash,
                "serial_number": c.serial,
            }
        }
        for c in cert_ids
    ]
    tbs: dict[str, Any] = {"request_list": request_list}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "extn_value": nonce}]
    return bytes(asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump())


def verify_signature(public: Any, signature: bytes, data: bytes, hash_alg: hashes.HashAlgorithm | None) -> None:
    if isinstance(public, ec.EllipticCurvePublicKey):
        assert hash_alg is not None
        public.verify(signature, data, ec.ECDSA(hash_alg))
    elif isinstance(public, rsa.RSAPublicKey):
        assert hash_alg is not None
        public.verify(signature, data, padding.PKCS1v15(), hash_alg)
    else:
        public.verify(signature, data)


def check_ocsp(der: bytes, issuer: x509.Certificate, *, delegated: bool = True) -> ocsp.OCSPResponse:
    """OCSP-14: lints clean (the responder certificate under the BR OCSP-RESPONDER profile),
    and the signature verifies with a responder certificate issued by the CA."""
    assert_ocsp_lints_clean(der, responder_profile="cabf-serverauth" if delegated else None)
    response = ocsp.load_der_ocsp_response(der)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    if delegated:
        [responder] = response.certificates
        responder.verify_directly_issued_by(issuer)
        eku = responder.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.OCSP_SIGNING]
        responder.extensions.get_extension_for_class(x509.OCSPNoCheck)
        for single in response.responses:
            assert single.next_update_utc is not None and responder.not_valid_after_utc >= single.next_update_utc
        signer_key = responder.public_key()
    else:
        assert response.certificates == []
        signer_key = issuer.public_key()
    verify_signature(signer_key, response.signature, response.tbs_response_bytes, response.signature_hash_algorithm)
    return response


def check_crl(der: bytes, issuer: x509.Certificate, *, profile: str = "cabf") -> x509.CertificateRevocationList:
    """CRL-03/CRL-09: lints clean, signature verifies, issuer DN byte-identical, AKI and number present."""
    assert_crl_lints_clean(der, profile)
    crl = x509.load_der_x509_crl(der)
    assert crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    assert crl.issuer.public_bytes() == issuer.subject.public_bytes()
    crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert 0 < number < 2**159  # at most 20 octets (RFC 5280 §5.2.3)
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc <= dt.timedelta(days=10)
    return crl


def certificate_row(
    issuer: str,
    serial: int,
    status: str,
    *,
    now: dt.datetime,
    revoked_at: dt.datetime | None = None,
    reason: str | None = None,
    created_at: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    invalidity_date: dt.datetime | None = None,
    issued_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """A certificates row written straight to the store (no signature): for statuses that
    only a crash produces, and for CRLs with many entries."""
    return {
        "issuer": issuer,
        "serial": format(serial, "x"),
        "status": status,
        "subject": "",
        "sans": "[]",
        "not_before": now - dt.timedelta(days=1),
        "not_after": not_after or now + dt.timedelta(days=90),
        "key_algorithm": "ec-p256",
        "key_size": 256,
        "profile": "tls-server",
        "protocol": "cli",
        "requester": "test",
        "tbs": b"",
        "created_at": created_at or now,
        "revoked_at": revoked_at,
        "revocation_reason": reason,
        "invalidity_date": invalidity_date,
        "issued_at": issued_at,
    }


async def insert_rows(ca: CertificateAuthority, rows: list[dict[str, Any]], chunk_size: int = 5000) -> None:
    from sqlalchemy import insert

    from ca.store.tables import certificates

    def write(tx: Tx, chunk: list[dict[str, Any]]) -> None:
        tx.conn.execute(insert(certificates), chunk)

    for start in range(0, len(rows), chunk_size):
        await ca.db.write(partial(write, chunk=rows[start : start + chunk_size]))
