"""EST /serverkeygen with the key encrypted to the client (RFC 7030 §4.4.1.2, §4.4.2), end to end
against `tetra serve` (EST-13).

The device enrols an RSA key with HTTP Basic, then authenticates with that certificate and asks
for a server-generated key with AsymmetricDecryptKeyIdentifier naming the certificate's SKI. The
reply's key part is opened as a client would: `openssl cms -decrypt` with the device key, then
the SignedData is verified against the RA certificate and the key package read.
"""

from __future__ import annotations

import base64
import email.message
import email.parser
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from ca.cms.keypackage import OID_ASYMMETRIC_KEY_PACKAGE
from ca.cms.verify import parse_signed_data
from protocols.est.keygen import OID_ASYMMETRIC_DECRYPT_KEY_ID, OID_DECRYPT_KEY_ID
from tests.integration.est_support import (
    PASSWORD,
    USER,
    EstServer,
    certificates,
    curl,
    enroll_args,
    est_server,
    openssl,
    verify_chain,
    write_pem,
)
from tests.pkilint_check import assert_certificate_lints_clean

pytestmark = pytest.mark.slow
NAME = "enc.example.com"


@pytest.fixture
def server(ca_dir: Path, tmp_path: Path) -> Iterator[EstServer]:
    yield from est_server(ca_dir, tmp_path)


def _csr_file(
    tmp: Path, name: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, attribute: tuple[str, bytes] | None
) -> Path:
    """A base64 CSR for ``NAME``, with one key-encryption attribute (its value an OCTET STRING)."""
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
    )
    if attribute is not None:
        oid, value = attribute
        builder = builder.add_attribute(x509.ObjectIdentifier(oid), value, _tag=_ASN1Type.OctetString)
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    path = tmp / f"{name}.b64"
    path.write_bytes(base64.encodebytes(der))
    return path


def _enrol(server: EstServer, tmp: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    """Enrol ``key`` under the keygen label with Basic; the (certificate, key) PEM files for curl."""
    kind = type(key).__name__[:2].lower()
    reply = curl(
        server,
        tmp,
        f"{server.url}/keygen/simpleenroll",
        *enroll_args(_csr_file(tmp, kind, key, None), "-u", f"{USER}:{PASSWORD}"),
    )
    assert reply.status == 200, reply.text
    (cert,) = certificates(reply)
    key_file = tmp / f"{kind}-device.key"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(write_pem(tmp / f"{kind}-device.pem", cert)), str(key_file)


def _ski(cert_file: str) -> bytes:
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def _parts(reply_headers: dict[str, str], body: bytes) -> list[email.message.Message]:
    raw = f"Content-Type: {reply_headers['content-type']}\r\n\r\n".encode() + body
    return list(email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw).iter_parts())


def _payload(part: email.message.Message) -> bytes:
    return base64.b64decode(b"".join(str(part.get_payload()).encode().split()))


def test_serverkeygen_encrypts_the_key_to_the_client_certificate(server: EstServer, tmp_path: Path) -> None:
    """EST-13: the key part is server-generated-key: EnvelopedData (ktri) to the TLS client
    certificate holding a SignedData by the RA over an AsymmetricKeyPackage; the key inside is
    the issued certificate's, the certificate chains and lints clean, the key is not logged."""
    cert_file, key_file = _enrol(server, tmp_path, rsa.generate_private_key(65537, 2048))
    csr = _csr_file(
        tmp_path, "ask", ec.generate_private_key(ec.SECP256R1()), (OID_ASYMMETRIC_DECRYPT_KEY_ID, _ski(cert_file))
    )
    before = server.counts()
    tls = ("--cert", cert_file, "--key", key_file)
    reply = curl(server, tmp_path, f"{server.url}/keygen/serverkeygen", *enroll_args(csr, *tls))
    assert reply.status == 200, reply.text
    assert server.counts()[0] == before[0] + 1
    key_part, cert_part = _parts(reply.headers, reply.body)
    assert b"\r\nContent-Type: application/pkcs7-mime; smime-type=server-generated-key\r\n" in reply.body
    assert key_part.get_content_type() == "application/pkcs7-mime"
    assert key_part["Content-Transfer-Encoding"] == "base64"
    enveloped = _payload(key_part)
    info = cms.ContentInfo.load(enveloped)
    assert info["content_type"].native == "enveloped_data"
    recipients = info["content"]["recipient_infos"]
    assert [r.name for r in recipients] == ["ktri"]
    assert info["content"]["encrypted_content_info"]["content_type"].native == "signed_data"

    # The client's side: decrypt with the device key (openssl), verify the RA's signature.
    signed_der = openssl("cms", "-decrypt", "-inform", "DER", "-recip", cert_file, "-inkey", key_file, data=enveloped)
    wrapped = cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData.load(signed_der)}).dump()
    message = parse_signed_data(bytes(wrapped))
    ra_cert = x509.load_pem_x509_certificate((server.ca_dir / "ra" / "ra.pem").read_bytes())
    assert message.signer_certificate == ra_cert
    assert message.content_type == OID_ASYMMETRIC_KEY_PACKAGE
    package = core.SequenceOf.load(message.content, spec=core.Any)
    assert len(package) == 1
    private_key = serialization.load_der_private_key(bytes(package[0].dump()), None)

    (cert,) = certificates(type(reply)(200, {}, str(cert_part.get_payload()).encode()))
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(serialization.Encoding.DER, spki) == private_key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    )
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ) == [NAME]
    verify_chain(server, tmp_path, cert)
    assert_certificate_lints_clean(cert.public_bytes(serialization.Encoding.DER))
    pkcs8 = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    log = (tmp_path / "serve.log").read_bytes()
    assert base64.b64encode(pkcs8)[:40] not in log and pkcs8.hex()[:80].encode() not in log


def test_encrypted_serverkeygen_refusals_issue_nothing(server: EstServer, tmp_path: Path) -> None:
    """EST-13: an identifier naming no known certificate: 400 (also with Basic, no certificate);
    DecryptKeyIdentifier (symmetric): 501; an EC client certificate: 501. Nothing is issued."""
    rsa_cert, rsa_key = _enrol(server, tmp_path, rsa.generate_private_key(65537, 2048))
    ec_cert, ec_key = _enrol(server, tmp_path, ec.generate_private_key(ec.SECP256R1()))
    placeholder = ec.generate_private_key(ec.SECP256R1())
    before = server.counts()
    url = f"{server.url}/keygen/serverkeygen"
    rsa_tls = ("--cert", rsa_cert, "--key", rsa_key)

    wrong = _csr_file(tmp_path, "wrong", placeholder, (OID_ASYMMETRIC_DECRYPT_KEY_ID, b"\x01" * 20))
    reply = curl(server, tmp_path, url, *enroll_args(wrong, *rsa_tls))
    assert reply.status == 400 and "names no certificate the server knows" in reply.text
    assert reply.headers["content-type"].startswith("text/plain")

    named = _csr_file(tmp_path, "named", placeholder, (OID_ASYMMETRIC_DECRYPT_KEY_ID, _ski(rsa_cert)))
    reply = curl(server, tmp_path, url, *enroll_args(named, "-u", f"{USER}:{PASSWORD}"))
    assert reply.status == 400 and "TLS client certificate" in reply.text

    symmetric = _csr_file(tmp_path, "symmetric", placeholder, (OID_DECRYPT_KEY_ID, b"psk-1"))
    reply = curl(server, tmp_path, url, *enroll_args(symmetric, *rsa_tls))
    assert reply.status == 501 and "DecryptKeyIdentifier" in reply.text

    to_ec = _csr_file(tmp_path, "to-ec", placeholder, (OID_ASYMMETRIC_DECRYPT_KEY_ID, _ski(ec_cert)))
    reply = curl(server, tmp_path, url, *enroll_args(to_ec, "--cert", ec_cert, "--key", ec_key))
    assert reply.status == 501 and "RSA" in reply.text
    assert server.counts() == before
