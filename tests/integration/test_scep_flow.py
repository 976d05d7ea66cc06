"""SCEP end to end against `tetra serve`, with messages built by tests/scep_client.py: GetCACaps,
GetCACert, GetNextCACert, PKCSReq by POST and GET (Cisco's line breaks), the alias paths with
trailing /pkiclient.exe, path labels, HTTP/1.0, GetCert and GetCRL. Every issued certificate
chains to the CA, carries the requested names and key, and passes pkilint."""

from __future__ import annotations

import socket
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import scep_client
from tests.integration.scep_support import STATIC, ScepServer, check_issued, enrol, module_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[ScepServer]:
    yield from module_server(tmp_path_factory, template_dir)


def test_get_ca_caps_lists_the_modern_capabilities(server: ScepServer) -> None:
    """SCEP-01: AES, SHA-256 and friends; no DES3 or SHA-1 on a profile that is not legacy."""
    reply = server.http("GET", f"{server.url}?operation=GetCACaps")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain")
    caps = reply.body.decode().split()
    for cap in ("POSTPKIOperation", "SHA-256", "SHA-512", "AES", "SCEPStandard", "Renewal", "GetNextCACert"):
        assert cap in caps
    assert "DES3" not in caps and "SHA-1" not in caps


def test_get_ca_cert_is_the_ra_and_the_chain(server: ScepServer) -> None:
    reply = server.http("GET", f"{server.url}/pkiclient.exe?operation=GetCACert&message=tetra")
    assert reply.status == 200
    assert reply.headers["content-type"] == "application/x-x509-ca-ra-cert"
    subjects = [c.subject.rfc4514_string() for c in scep_client.certs_only(reply.body)]
    assert any("Issuing CA" in s for s in subjects) and any("Root CA" in s for s in subjects)
    assert server.ra_certificate().subject.rfc4514_string() in subjects


def test_pkcs_req_post_with_the_static_challenge(server: ScepServer, tmp_path: Path) -> None:
    """SCEP-12: the CertRep is signed by the RA (SCEP-11), echoes the transactionID, answers our
    senderNonce as its recipientNonce with a fresh senderNonce of its own, messageType CertRep,
    pkiStatus SUCCESS (tests/scep_client.parse_cert_rep checks each), AES-256 as we asked."""
    requester = scep_client.Requester.fresh()
    message = scep_client.pkcs_req(
        requester, server.ra_certificate(), "router1.example.com", ["router1.example.com"], challenge=STATIC
    )
    rep = server.exchange(message, requester)
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text
    assert rep.cipher == "aes256"
    check_issued(server, tmp_path, rep.certificate, requester, ["router1.example.com"])


def test_pkcs_req_by_get_with_cisco_line_breaks(server: ScepServer, tmp_path: Path) -> None:
    """SCEP-13: PKIOperation by GET, the message base64 in 64-character lines (%0A) as Cisco IOS
    sends it, under the alias /cgi-bin/pkiclient.exe."""
    requester = scep_client.Requester.fresh("cisco")
    message = scep_client.pkcs_req(
        requester, server.ra_certificate(), "sw1.example.com", ["sw1.example.com"], challenge=STATIC
    )
    query = scep_client.get_query(message.der, cisco=True)
    assert "%0A" in query
    reply = server.http("GET", f"{server.base}/cgi-bin/pkiclient.exe?{query}")
    assert reply.status == 200, reply.body
    rep = scep_client.parse_cert_rep(reply.body, message, requester.key, server.ra_certificate())
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text
    check_issued(server, tmp_path, rep.certificate, requester, ["sw1.example.com"])


@pytest.mark.parametrize(
    "path",
    [
        "/scep",
        "/scep/",
        "/scep/pkiclient.exe",
        "/scep/mdm",
        "/scep/mdm/pkiclient.exe",
        "/scep/device",
        "/cgi-bin/pkiclient.exe",
        "/certsrv/mscep/mscep.dll",
        "/certsrv/mscep/mscep.dll/pkiclient.exe",
    ],
)
def test_every_mount_and_label_enrols(server: ScepServer, tmp_path: Path, path: str) -> None:
    """SCEP-13: /scep, its labels, the paths devices hard-code, each with a trailing file name."""
    name = f"p{abs(hash(path)) % 10**8}.example.com"
    requester, rep = enrol(server, name, path=path)
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text
    check_issued(server, tmp_path, rep.certificate, requester, [name])


@pytest.mark.parametrize("path", ["/scep/nosuch/pkiclient.exe", "/scep/nosuch", "/scep/code-signing"])
def test_an_unknown_label_is_404(server: ScepServer, path: str) -> None:
    """A label that selects no SCEP profile (unknown, or a profile without scep) is a 404, never
    the default profile."""
    reply = server.http("GET", f"{server.base}{path}?operation=GetCACaps")
    assert reply.status == 404, reply.body


def _http10(server: ScepServer, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.0\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_http_1_0_get_ca_caps_and_a_long_get_pki_operation(server: ScepServer, tmp_path: Path) -> None:
    """SCEP-13: an HTTP/1.0 client without Host (old devices) on the plain listener gets its
    answer and the connection closed; a PKIOperation GET of several KiB works too."""
    raw = _http10(server, "/scep?operation=GetCACaps")
    assert raw.startswith(b"HTTP/1.") and b" 200 " in raw.split(b"\r\n", 1)[0]
    assert b"POSTPKIOperation" in raw
    requester = scep_client.Requester.fresh("old-device", bits=4096)
    names = ["old.example.com", *(f"alias{i}.old.example.com" for i in range(80))]
    message = scep_client.pkcs_req(requester, server.ra_certificate(), "old.example.com", names, challenge=STATIC)
    query = scep_client.get_query(message.der, cisco=True)
    assert len(query) > 8190  # over aiohttp's default 8190-byte request line
    raw = _http10(server, f"/cgi-bin/pkiclient.exe?{query}")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n", 1)[0], head
    rep = scep_client.parse_cert_rep(body, message, requester.key, server.ra_certificate())
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text
    check_issued(server, tmp_path, rep.certificate, requester, names)


def test_get_next_ca_cert_without_a_rollover_is_404(server: ScepServer) -> None:
    """SCEP-19: nothing staged, nothing to hand out."""
    reply = server.http("GET", f"{server.url}?operation=GetNextCACert")
    assert reply.status == 404 and b"no CA rollover is pending" in reply.body


def test_include_ca_certs_false_sends_the_certificate_alone(server: ScepServer) -> None:
    _requester, rep = enrol(server, "alone.example.com", path="/scep/chain")
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text
    assert len(rep.certificates) == 1


def test_the_chain_follows_the_certificate(server: ScepServer) -> None:
    """With include_ca_certs (the default here) the new certificate comes first, then its CA:
    sscep takes the first certificate that is not self-signed."""
    _, rep = enrol(server, "first.example.com")
    assert rep.certificates[0] == rep.certificate
    assert [c.subject for c in rep.certificates[1:]] == [server.issuing_ca().subject]


def test_get_cert_returns_an_issued_certificate(server: ScepServer) -> None:
    """SCEP-18: GetCert by IssuerAndSerialNumber; an unknown serial is badCertId."""
    _requester, rep = enrol(server, "lookup.example.com")
    issued = rep.certificate
    asker = scep_client.Requester.fresh("asker")
    message = scep_client.get_cert(asker, server.ra_certificate(), issued.issuer, issued.serial_number)
    got = server.exchange(message, asker)
    assert got.status == scep_client.SUCCESS, got.fail_info_text
    assert got.certificates == [issued]
    unknown = scep_client.get_cert(asker, server.ra_certificate(), issued.issuer, 12345)
    refused = server.exchange(unknown, asker)
    assert (refused.status, refused.fail_info) == (scep_client.FAILURE, scep_client.BAD_CERT_ID)
    stranger = scep_client.get_cert(asker, server.ra_certificate(), asker.certificate.subject, issued.serial_number)
    refused = server.exchange(stranger, asker)
    assert (refused.status, refused.fail_info) == (scep_client.FAILURE, scep_client.BAD_CERT_ID)


def test_get_crl_returns_the_issuers_crl(server: ScepServer) -> None:
    """SCEP-18: GetCRL answers with the issuer's current complete CRL, signed by the CA."""
    requester, rep = enrol(server, "crl.example.com")
    message = scep_client.get_crl(
        requester, server.ra_certificate(), rep.certificate.issuer, rep.certificate.serial_number
    )
    got = server.exchange(message, requester)
    assert got.status == scep_client.SUCCESS, got.fail_info_text
    (crl,) = got.crls
    assert crl.issuer == server.issuing_ca().subject
    assert crl.is_signature_valid(server.issuing_ca().public_key())  # type: ignore[arg-type]


def test_the_https_listener_serves_scep_too(server: ScepServer, tmp_path: Path) -> None:
    """Both listeners: a PKCSReq over HTTPS (the demo TLS certificate, verified against the root)."""
    context = ssl.create_default_context(cafile=str(server.root))
    requester = scep_client.Requester.fresh("tls.example.com")
    message = scep_client.pkcs_req(
        requester, server.ra_certificate(), "tls.example.com", ["tls.example.com"], challenge=STATIC
    )
    request = urllib.request.Request(
        f"https://localhost:{server.https_port}/scep?operation=PKIOperation", data=message.der, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30, context=context) as reply:
        rep = scep_client.parse_cert_rep(reply.read(), message, requester.key, server.ra_certificate())
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text
    check_issued(server, tmp_path, rep.certificate, requester, ["tls.example.com"])
