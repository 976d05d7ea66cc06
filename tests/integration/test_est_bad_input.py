"""Every bad EST input the issue lists, against `tetra serve`: the HTTP status and the reason in
EST's plain text, and nothing issued or stored (certificates, enrollment requests, EST rows)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.est_support import (
    PASSWORD,
    USER,
    EstServer,
    Reply,
    curl,
    curl_exit_code,
    device_certificate,
    enroll_args,
    enroll_basic,
    est_server,
    openssl,
    openssl_csr,
    write_pem,
)

pytestmark = pytest.mark.slow
BASIC = ("-u", f"{USER}:{PASSWORD}")


@pytest.fixture
def server(ca_dir: Path, tmp_path: Path) -> Iterator[EstServer]:
    yield from est_server(ca_dir, tmp_path)


def _post(
    server: EstServer, tmp: Path, op: str, body: bytes, *args: str, content_type: str = "application/pkcs10"
) -> Reply:
    payload = tmp / "payload"
    payload.write_bytes(body)
    return curl(
        server, tmp, f"{server.url}/{op}", *args, "--data-binary", f"@{payload}", "-H", f"Content-Type: {content_type}"
    )


def _refused(server: EstServer, reply: Reply, status: int, words: str, before: tuple[int, int, int]) -> None:
    assert reply.status == status, reply.text
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert words in reply.text
    assert server.counts() == before, "a refused request issued or stored something"


def _csr_der(tmp: Path, name: str) -> bytes:
    _, b64 = openssl_csr(tmp, name, sans=f"DNS:{name}")
    return base64.b64decode(b"".join(b64.read_bytes().split()))


def test_bad_bodies(server: EstServer, tmp_path: Path) -> None:
    """EST-07: base64 that does not decode, DER that is not a CSR, trailing garbage, a CSR whose
    signature fails: 400 with the reason; a wrong Content-Type: 415; a body over the limit: 413."""
    before = server.counts()
    _refused(server, _post(server, tmp_path, "simpleenroll", b"not*base64!", *BASIC), 400, "not base64", before)
    junk = base64.b64encode(b"\x30\x03\x02\x01\x05")
    _refused(server, _post(server, tmp_path, "simpleenroll", junk, *BASIC), 400, "not a PKCS#10 CSR", before)
    der = _csr_der(tmp_path, "good.example.com")
    trailing = base64.b64encode(der + b"\x00garbage")
    _refused(server, _post(server, tmp_path, "simpleenroll", trailing, *BASIC), 400, "not a PKCS#10 CSR", before)
    tampered = bytearray(der)
    tampered[-3] ^= 0x01  # inside the signature
    reply = _post(server, tmp_path, "simpleenroll", base64.b64encode(bytes(tampered)), *BASIC)
    assert reply.status == 400 and ("signature" in reply.text or "PKCS#10" in reply.text), reply.text
    assert server.counts() == before
    body = base64.b64encode(der)
    wrong = _post(server, tmp_path, "simpleenroll", body, *BASIC, content_type="application/pkcs7-mime")
    _refused(server, wrong, 415, "Content-Type must be application/pkcs10", before)
    over = _post(server, tmp_path, "simpleenroll", b"A" * (64 * 1024 + 4), *BASIC)
    assert over.status == 413 and server.counts() == before


def test_wrong_or_missing_password(server: EstServer, tmp_path: Path) -> None:
    """EST-02: no credentials, or a wrong password: 401 with a Basic WWW-Authenticate; Basic over
    plain HTTP is refused (403) before the password is looked at."""
    before = server.counts()
    body = base64.b64encode(_csr_der(tmp_path, "pw.example.com"))
    for args in ((), ("-u", f"{USER}:wrong"), ("-u", f"nobody:{PASSWORD}")):
        reply = _post(server, tmp_path, "simpleenroll", body, *args)
        _refused(server, reply, 401, "", before)
        assert reply.headers["www-authenticate"].startswith('Basic realm="tetra-est"')
    payload = tmp_path / "plain"
    payload.write_bytes(body)
    plain = curl(server, tmp_path, f"{server.plain_url}/simpleenroll", *BASIC, *enroll_args(payload))
    _refused(server, plain, 403, "needs HTTPS", before)


def test_unknown_label_and_forbidden_serverkeygen(server: EstServer, tmp_path: Path) -> None:
    """EST-17: an unknown label: 404; EST-13: serverkeygen under a profile without server-generated keys: 403."""
    before = server.counts()
    body = base64.b64encode(_csr_der(tmp_path, "lbl.example.com"))
    _refused(server, _post(server, tmp_path, "nosuch/simpleenroll", body, *BASIC), 404, "no EST profile", before)
    assert curl(server, tmp_path, f"{server.url}/nosuch/cacerts").status == 404
    reply = _post(server, tmp_path, "iot/serverkeygen", body, *BASIC)
    _refused(server, reply, 403, "does not allow server-generated keys", before)


def test_untrusted_expired_and_misplaced_client_certificates(server: EstServer, tmp_path: Path) -> None:
    """EST-04: a client certificate from a CA nobody configured, or an expired one (a factory's,
    or one signed by Tetra's own issuing CA, offered for simplereenroll), fails the TLS handshake;
    a factory certificate outside its label: 403. Nothing issued."""
    from tests.integration.est_support import factory_ca

    stranger_dir = tmp_path / "stranger"
    stranger_dir.mkdir()
    stranger_ca, stranger_key = factory_ca(stranger_dir)  # a CA the server does not know
    before = server.counts()
    _, csr = openssl_csr(tmp_path, "tls.example.com", sans="DNS:tls.example.com")
    cases = (
        (stranger_ca, stranger_key, False, "factory/simpleenroll"),
        (*_factory(server), True, "factory/simpleenroll"),
        (*_issuing_ca(server), True, "iot/simplereenroll"),  # one of ours, expired: no re-enrolment
    )
    for ca_cert, ca_key, expired, operation in cases:
        cert, key = device_certificate(ca_cert, ca_key, "SN-1", expired=expired)
        cert_file = write_pem(tmp_path / "client.pem", cert)
        key_file = tmp_path / "client.key"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        code = curl_exit_code(
            server,
            f"{server.url}/{operation}",
            "--cert",
            str(cert_file),
            "--key",
            str(key_file),
            *enroll_args(csr),
        )
        assert code in (35, 52, 56), f"curl exit {code}: the handshake should have refused the certificate"
    assert server.counts() == before
    factory_cert, factory_key = _factory(server)
    cert, key = device_certificate(factory_cert, factory_key, "SN-2")
    cert_file = write_pem(tmp_path / "device.pem", cert)
    key_file = tmp_path / "device.key"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    reply = curl(
        server,
        tmp_path,
        f"{server.url}/iot/simpleenroll",
        "--cert",
        str(cert_file),
        "--key",
        str(key_file),
        *enroll_args(csr),
    )
    _refused(server, reply, 403, "TLS client certificate refused", before)


def _issuing_ca(server: EstServer) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Tetra's issuing CA and its key, read as `tetra init` left them."""
    cert = x509.load_pem_x509_certificate((server.ca_dir / "ca" / "issuing-ca.pem").read_bytes())
    passphrase = (server.ca_dir / "secrets" / "passphrase").read_bytes().strip()
    key = serialization.load_pem_private_key((server.ca_dir / "keys" / "issuing-ca.key").read_bytes(), passphrase)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _factory(server: EstServer) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The factory CA the fixture configured, with its key."""
    assert server.factory is not None
    return server.factory


def test_reenroll_refusals(server: EstServer, tmp_path: Path) -> None:
    """EST-05: simplereenroll that changes the subject or adds a name: 403; with Basic only: 403;
    with a revoked certificate: 403. Nothing issued."""
    cert, key, cert_file = enroll_basic(server, tmp_path, "re.example.com")
    tls = ("--cert", str(cert_file), "--key", str(key))
    before = server.counts()
    _, other_subject = openssl_csr(tmp_path, "x", subject="/CN=other.example.com", sans="DNS:re.example.com", key=key)
    reply = curl(server, tmp_path, f"{server.url}/iot/simplereenroll", *tls, *enroll_args(other_subject))
    _refused(server, reply, 403, "subject differs", before)
    _, more = openssl_csr(
        tmp_path, "y", subject="/CN=re.example.com", sans="DNS:re.example.com,DNS:evil.example.com", key=key
    )
    reply = curl(server, tmp_path, f"{server.url}/iot/simplereenroll", *tls, *enroll_args(more))
    _refused(server, reply, 403, "subjectAltNames differ", before)
    _, same = openssl_csr(tmp_path, "z", subject="/CN=re.example.com", sans="DNS:re.example.com", key=key)
    reply = curl(server, tmp_path, f"{server.url}/iot/simplereenroll", *BASIC, *enroll_args(same))
    _refused(server, reply, 403, "TLS client certificate being renewed", before)
    server.cli("revoke", format(cert.serial_number, "x"), "--reason", "keyCompromise")
    before = server.counts()
    reply = curl(server, tmp_path, f"{server.url}/iot/simplereenroll", *tls, *enroll_args(same))
    _refused(server, reply, 403, "revoked", before)


def test_a_certificate_enrols_only_its_own_names(server: EstServer, tmp_path: Path) -> None:
    """SEC-01: a Tetra certificate for dev1 authenticates simpleenroll of a new key for dev1, and
    is refused (403, nothing issued) a certificate naming dev2."""
    _, key, cert_file = enroll_basic(server, tmp_path, "dev1.example.com")
    tls = ("--cert", str(cert_file), "--key", str(key))
    _, other = openssl_csr(tmp_path, "dev2.example.com", sans="DNS:dev2.example.com")
    before = server.counts()
    reply = curl(server, tmp_path, f"{server.url}/iot/simpleenroll", *tls, *enroll_args(other))
    _refused(server, reply, 403, "dev2.example.com", before)
    _, own = openssl_csr(tmp_path, "dev1-next", subject="/CN=dev1.example.com", sans="DNS:dev1.example.com")
    reply = curl(server, tmp_path, f"{server.url}/iot/simpleenroll", *tls, *enroll_args(own))
    assert reply.status == 200, reply.text


def test_csr_outside_the_csrattrs_advice(server: EstServer, tmp_path: Path) -> None:
    """EST-10: a CSR whose key the profile does not allow (csrattrs names EC P-256/P-384 and RSA
    2048+; this is RSA 1024): 400 with the rule, nothing issued."""
    key = tmp_path / "weak.key"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", str(key))
    _, csr = openssl_csr(tmp_path, "weak.example.com", sans="DNS:weak.example.com", key=key)
    before = server.counts()
    reply = curl(server, tmp_path, f"{server.url}/iot/simpleenroll", *enroll_args(csr, *BASIC))
    _refused(server, reply, 400, "not allowed", before)


def test_wrong_passwords_are_braked(server: EstServer, tmp_path: Path) -> None:
    """EST-03: after password_failures (4 here) wrong passwords from one address, even the right
    password is refused with 429 and Retry-After, without being checked; nothing issued."""
    body = base64.b64encode(_csr_der(tmp_path, "brake.example.com"))
    before = server.counts()
    for _ in range(4):
        assert _post(server, tmp_path, "simpleenroll", body, "-u", f"{USER}:guess").status == 401
    reply = _post(server, tmp_path, "simpleenroll", body, *BASIC)
    _refused(server, reply, 429, "too many wrong passwords", before)
    assert 500 <= int(reply.headers["retry-after"]) <= 600
