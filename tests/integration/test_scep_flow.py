"""SCEP end to end against `tetra serve`, with messages built by tests/scep_client.py: GetCACaps,
GetCACert, PKCSReq by POST and GET. Every issued certificate chains to the CA, carries the
requested names and key, and passes pkilint."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests import scep_client
from tests.integration.est_support import openssl
from tests.integration.scep_support import STATIC, ScepServer, scep_server
from tests.pkilint_check import assert_certificate_lints_clean

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[ScepServer]:
    import shutil

    tmp = tmp_path_factory.mktemp("scep")
    ca_dir = tmp / "ca"
    shutil.copytree(template_dir, ca_dir)
    yield from scep_server(ca_dir, tmp)


def check_issued(
    server: ScepServer, tmp: Path, cert: x509.Certificate, requester: scep_client.Requester, names: list[str]
) -> None:
    """Chains to the root (`openssl verify`), holds the requester's key and names, lints clean."""
    leaf = tmp / "leaf.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    chain = tmp / "chain.pem"
    chain.write_bytes((server.ca_dir / "ca" / "issuing-ca.pem").read_bytes())
    openssl("verify", "-CAfile", str(server.root), "-untrusted", str(chain), str(leaf))
    assert cert.public_key() == requester.key.public_key()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == names
    assert_certificate_lints_clean(cert.public_bytes(serialization.Encoding.DER))


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


def test_wrong_challenge_is_bad_request_and_issues_nothing(server: ScepServer) -> None:
    requester = scep_client.Requester.fresh()
    before = server.counts()
    message = scep_client.pkcs_req(requester, server.ra_certificate(), "x.example.com", challenge="not-the-secret")
    rep = server.exchange(message, requester)
    assert (rep.status, rep.fail_info) == (scep_client.FAILURE, scep_client.BAD_REQUEST)
    assert rep.fail_info_text and "challenge" in rep.fail_info_text
    assert server.counts() == before
