"""The CMS replies assembled from DER parts (ca/cms/signed.py, enveloped.py) and the cached
certificate identities (ca/cms/_asn1.py): the speed-ups must not change a byte or a match.

SCEP-12: every CertRep part is strict DER exactly as asn1crypto itself would encode it, so
clients that re-encode before verifying (OpenSSL re-encodes the signed attributes) see the same
bytes. The identity cache keeps RFC 5280 name matching for issuers spelled another way, and a
software RSA-2048 key works on the calling thread while larger keys keep to the executor.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ca.cms import ContentCipher, certs_only, envelope, sign_data
from ca.cms._asn1 import identifies, issuer_and_serial_der
from ca.cms.scep import MessageType, PkiStatus, scep_attributes
from ca.signers.software import INLINE_RSA_BITS, SoftwareSigner


def _certificate(key: rsa.RSAPrivateKey, common_name: str, serial: int = 4242) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


KEY = rsa.generate_private_key(65537, 2048)
RA = _certificate(KEY, "Tetra Test RA")
DEVICE = _certificate(rsa.generate_private_key(65537, 2048), "device.example.com", serial=7)


def _canonical(der: bytes) -> bool:
    """Strictly one ContentInfo, and asn1crypto's own re-encoding of it is the same bytes."""
    info = asn1_cms.ContentInfo.load(der, strict=True)
    return bool(info.dump(force=True) == der)


@pytest.mark.parametrize("digest", ["sha256", "sha512", "sha1"])
async def test_scep12_cert_rep_is_canonical_der(digest: str) -> None:
    attributes = scep_attributes(
        message_type=MessageType.CERT_REP,
        transaction_id="0123456789ABCDEF",
        sender_nonce=b"s" * 16,
        recipient_nonce=b"r" * 16,
        pki_status=PkiStatus.SUCCESS,
    )
    inner = envelope(certs_only([DEVICE]), DEVICE, cipher=ContentCipher.AES128_CBC)
    signed = await sign_data(SoftwareSigner("ra", KEY), RA, inner, digest=digest, attributes=attributes)
    assert _canonical(signed)
    assert _canonical(inner)
    assert _canonical(certs_only([RA]))
    parsed = asn1_cms.ContentInfo.load(signed)["content"]
    assert parsed["encap_content_info"]["content"].native == inner
    assert parsed["signer_infos"][0]["sid"].chosen.dump() == issuer_and_serial_der(RA)


def test_certs_only_keeps_the_callers_order() -> None:
    """Not a sorted SET OF: sscep takes the first certificate that is not self-signed."""
    bag = asn1_cms.ContentInfo.load(certs_only([RA, DEVICE, RA]))["content"]["certificates"]
    assert [c.chosen.dump() for c in bag] == [RA.public_bytes(Encoding.DER), DEVICE.public_bytes(Encoding.DER)]


def _identifier(issuer: asn1_x509.Name, serial: int) -> asn1_cms.SignerIdentifier:
    named = asn1_cms.IssuerAndSerialNumber({"issuer": issuer, "serial_number": serial})
    return asn1_cms.SignerIdentifier(name="issuer_and_serial_number", value=named)


def test_scep12_identifier_matching_after_caching() -> None:
    same = asn1_x509.Name.load(RA.issuer.public_bytes())
    respelled = asn1_x509.Name.build({"common_name": "  tetra   TEST ra "}, use_printable=True)
    assert respelled.dump() != same.dump()
    assert identifies(_identifier(same, 4242), RA)
    assert identifies(_identifier(respelled, 4242), RA)  # RFC 5280 matching, not bytes
    assert not identifies(_identifier(same, 4243), RA)
    assert not identifies(_identifier(asn1_x509.Name.build({"common_name": "Other RA"}), 4242), RA)
    assert not identifies(_identifier(same, 7), DEVICE)


@pytest.mark.parametrize("bits", [2048, 3072])
async def test_software_rsa_runs_inline_up_to_2048_bits(bits: int) -> None:
    signer = SoftwareSigner("k", KEY if bits == 2048 else rsa.generate_private_key(65537, bits))
    caller = threading.get_ident()
    worker = await signer.run(threading.get_ident)
    assert (worker == caller) is (bits <= INLINE_RSA_BITS)
    assert await asyncio.wait_for(signer.run(lambda: 1), 5) == 1
