"""Encrypted server-generated keys (RFC 7030 §4.4.1.2, §4.4.2; EST-13): reading the
AsymmetricDecryptKeyIdentifier, choosing the recipient, and the key package's CMS layers."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from ca.cms import decrypt_enveloped, parse_signed_data
from ca.cms.keypackage import OID_ASYMMETRIC_KEY_PACKAGE, encrypted_key_package
from ca.signers.software import SoftwareSigner
from protocols.est.errors import EstError
from protocols.est.keygen import (
    OID_ASYMMETRIC_DECRYPT_KEY_ID,
    key_transport_recipient,
    requested_key_identifier,
)


def _cert(
    key: CertificateIssuerPrivateKeyTypes, *, ski: bool = True, key_encipherment: bool = True
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    usage = x509.KeyUsage(True, False, key_encipherment, False, False, False, False, False, False)
    builder = builder.add_extension(usage, critical=True)
    if ski:
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    return builder.sign(key, hashes.SHA256())


def _ski(cert: x509.Certificate) -> bytes:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _csr(value: bytes | None, tag: _ASN1Type = _ASN1Type.OctetString) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device")])
    )
    if value is not None:
        builder = builder.add_attribute(x509.ObjectIdentifier(OID_ASYMMETRIC_DECRYPT_KEY_ID), value, _tag=tag)
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


def test_the_identifier_is_an_octet_string() -> None:
    """§4.4.1.2: AsymmetricDecryptKeyIdentifier ::= OCTET STRING; another type is a 400."""
    assert requested_key_identifier(_csr(None)) is None
    assert requested_key_identifier(_csr(b"\x01\x02\x03")) == b"\x01\x02\x03"
    with pytest.raises(EstError, match="OCTET STRING") as refused:
        requested_key_identifier(_csr(b"text", _ASN1Type.UTF8String))
    assert refused.value.status == 400


def test_the_identifier_must_name_the_tls_client_certificate() -> None:
    """The SKI of the TLS client certificate (RSA) selects it; anything else is a 400, EC a 501."""
    rsa_cert = _cert(rsa.generate_private_key(65537, 2048))
    assert key_transport_recipient(_ski(rsa_cert), rsa_cert) is rsa_cert
    for identifier, client in (
        (b"\x00" * 20, rsa_cert),
        (_ski(rsa_cert), None),
        (b"", _cert(rsa.generate_private_key(65537, 2048), ski=False)),
    ):
        with pytest.raises(EstError, match="names no certificate the server knows") as refused:
            key_transport_recipient(identifier, client)
        assert refused.value.status == 400
    signing_only = _cert(rsa.generate_private_key(65537, 2048), key_encipherment=False)
    with pytest.raises(EstError, match="keyEncipherment") as refused:
        key_transport_recipient(_ski(signing_only), signing_only)
    assert refused.value.status == 400
    ec_cert = _cert(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(EstError, match="RSA") as refused:
        key_transport_recipient(_ski(ec_cert), ec_cert)
    assert refused.value.status == 501


async def test_key_package_layers() -> None:
    """§4.4.2 / RFC 5958 §4: EnvelopedData (ktri, content type id-signedData) around a SignedData
    by the RA over an AsymmetricKeyPackage holding the PKCS#8 key; the recipient's key opens it."""
    client_key = rsa.generate_private_key(65537, 2048)
    client_cert = _cert(client_key)
    ra_key = ec.generate_private_key(ec.SECP256R1())
    ra_cert = _cert(ra_key)
    generated = ec.generate_private_key(ec.SECP384R1())
    pkcs8 = generated.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = await encrypted_key_package(pkcs8, client_cert, SoftwareSigner("ra", ra_key), ra_cert)
    info = cms.ContentInfo.load(der)
    assert info["content_type"].native == "enveloped_data"
    assert info["content"]["encrypted_content_info"]["content_type"].native == "signed_data"
    assert pkcs8 not in der
    signed = await decrypt_enveloped(der, SoftwareSigner("client", client_key), client_cert)
    wrapped = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData.load(signed)})
    message = parse_signed_data(bytes(wrapped.dump()))
    assert message.signer_certificate == ra_cert
    assert message.content_type == OID_ASYMMETRIC_KEY_PACKAGE
    package = core.SequenceOf.load(message.content, spec=core.Any)
    assert [bytes(item.dump()) for item in package] == [pkcs8]
