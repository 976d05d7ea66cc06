"""EST end to end against `tetra serve`, with curl and openssl as RFC 7030's examples use them:
cacerts, simpleenroll (HTTP Basic and client certificate), simplereenroll, serverkeygen,
csrattrs, fullcmc. Every issued certificate chains to the root (`openssl verify`), carries the
requested names and the client's key (or the server-generated one), and passes pkilint."""

from __future__ import annotations

import base64
import email.parser
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.est_support import (
    PASSWORD,
    USER,
    EstServer,
    certificates,
    curl,
    enroll_args,
    est_server,
    openssl,
    openssl_csr,
    verify_chain,
    write_pem,
)
from tests.pkilint_check import assert_certificate_lints_clean

pytestmark = pytest.mark.slow
BASIC = ("-u", f"{USER}:{PASSWORD}")


@pytest.fixture
def server(ca_dir: Path, tmp_path: Path) -> Iterator[EstServer]:
    yield from est_server(ca_dir, tmp_path)


def _public_key_der(key_file: Path) -> bytes:
    key = serialization.load_pem_private_key(key_file.read_bytes(), None)
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_issued(server: EstServer, tmp: Path, cert: x509.Certificate, key_file: Path, names: list[str]) -> None:
    verify_chain(server, tmp, cert)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert spki == _public_key_der(key_file)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == names
    assert_certificate_lints_clean(cert.public_bytes(serialization.Encoding.DER))


def test_cacerts_as_rfc_7030_shows_it(server: EstServer, tmp_path: Path) -> None:
    """EST-01: no authentication, 200, application/pkcs7-mime certs-only in base64: the issuing CA
    and the root, readable by `openssl base64 -d | openssl pkcs7 -inform DER -print_certs`."""
    reply = curl(server, tmp_path, f"{server.url}/cacerts")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only"
    assert reply.headers["content-transfer-encoding"] == "base64"
    printed = openssl("pkcs7", "-inform", "DER", "-print_certs", data=openssl("base64", "-d", data=reply.body))
    assert b"Tetra Demo Issuing CA" in printed and b"Tetra Demo Root CA" in printed
    labelled = curl(server, tmp_path, f"{server.url}/iot/cacerts")
    assert certificates(labelled) == certificates(reply)


def test_simpleenroll_basic_then_reenroll_with_the_certificate(server: EstServer, tmp_path: Path) -> None:
    key, csr = openssl_csr(tmp_path, "dev1.example.com", sans="DNS:dev1.example.com")
    reply = curl(server, tmp_path, f"{server.url}/iot/simpleenroll", *enroll_args(csr, *BASIC))
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"] == "application/pkcs7-mime; smime-type=certs-only"
    (cert,) = certificates(reply)
    _check_issued(server, tmp_path, cert, key, ["dev1.example.com"])

    # simplereenroll, authenticated by that certificate, with a new key (rekey).
    cert_file = write_pem(tmp_path / "dev1.pem", cert)
    new_key, recsr = openssl_csr(tmp_path, "rekey", subject="/CN=dev1.example.com", sans="DNS:dev1.example.com")
    tls = ("--cert", str(cert_file), "--key", str(key))
    reply = curl(server, tmp_path, f"{server.url}/iot/simplereenroll", *enroll_args(recsr, *tls))
    assert reply.status == 200, reply.text
    (renewed,) = certificates(reply)
    assert renewed.serial_number != cert.serial_number
    _check_issued(server, tmp_path, renewed, new_key, ["dev1.example.com"])

    # The renewed certificate authenticates a simpleenroll for its own name (client-certificate
    # auth): a second key for dev1, as a device with two key slots would ask.
    other_key, other = openssl_csr(tmp_path, "dev1-second", subject="/CN=dev1.example.com", sans="DNS:dev1.example.com")
    tls = ("--cert", str(write_pem(tmp_path / "renewed.pem", renewed)), "--key", str(new_key))
    reply = curl(server, tmp_path, f"{server.url}/simpleenroll", *enroll_args(other, *tls))
    assert reply.status == 200, reply.text
    _check_issued(server, tmp_path, certificates(reply)[0], other_key, ["dev1.example.com"])


def test_rfc_8951_encodings(server: EstServer, tmp_path: Path) -> None:
    """EST-15, RFC 8951 §3.2: base64 without line breaks is accepted, Content-Transfer-Encoding is ignored,
    and a Content-Type with parameters is still application/pkcs10."""
    key, csr = openssl_csr(tmp_path, "flat.example.com", sans="DNS:flat.example.com")
    flat = tmp_path / "flat.b64"
    flat.write_bytes(b"".join(csr.read_bytes().split()))
    args = [*BASIC, "--data-binary", f"@{flat}", "-H", "Content-Type: application/pkcs10; charset=us-ascii"]
    reply = curl(server, tmp_path, f"{server.url}/simpleenroll", *args, "-H", "Content-Transfer-Encoding: binary")
    assert reply.status == 200, reply.text
    _check_issued(server, tmp_path, certificates(reply)[0], key, ["flat.example.com"])


def test_serverkeygen_returns_key_and_certificate(server: EstServer, tmp_path: Path) -> None:
    """EST-13: multipart/mixed with the PKCS#8 key and the certificate, over authenticated TLS."""
    _, csr = openssl_csr(tmp_path, "gen.example.com", sans="DNS:gen.example.com")
    reply = curl(server, tmp_path, f"{server.url}/keygen/serverkeygen", *enroll_args(csr, *BASIC))
    assert reply.status == 200, reply.text
    assert reply.headers["content-type"].startswith("multipart/mixed; boundary=")
    raw = f"Content-Type: {reply.headers['content-type']}\r\n\r\n".encode() + reply.body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["application/pkcs8", "application/pkcs7-mime"]
    key_der = base64.b64decode(b"".join(str(parts[0].get_payload()).encode().split()))
    key_file = tmp_path / "gen.key"
    key_file.write_bytes(openssl("pkey", "-inform", "DER", "-outform", "PEM", data=key_der))
    cert_b64 = str(parts[1].get_payload()).encode()
    (cert,) = certificates(type(reply)(200, {}, cert_b64))
    _check_issued(server, tmp_path, cert, key_file, ["gen.example.com"])


def test_csrattrs_and_fullcmc(server: EstServer, tmp_path: Path) -> None:
    """csrattrs follows the profile (challengePassword only where PoP is required); EST-17: fullcmc 501."""
    reply = curl(server, tmp_path, f"{server.url}/pop/csrattrs")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/csrattrs"
    parsed = openssl("asn1parse", "-inform", "DER", data=openssl("base64", "-d", data=reply.body))
    for wanted in (b"challengePassword", b"id-ecPublicKey", b"prime256v1", b"secp384r1", b"rsaEncryption"):
        assert wanted in parsed
    plain = curl(server, tmp_path, f"{server.url}/csrattrs")
    assert b"challengePassword" not in openssl(
        "asn1parse", "-inform", "DER", data=openssl("base64", "-d", data=plain.body)
    )
    _, csr = openssl_csr(tmp_path, "cmc.example.com")
    reply = curl(server, tmp_path, f"{server.url}/fullcmc", *enroll_args(csr, *BASIC))
    assert reply.status == 501 and "fullcmc" in reply.text
