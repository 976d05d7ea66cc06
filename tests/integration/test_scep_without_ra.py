"""SCEP on a server with no RA: GetCACert is the issuing CA certificate alone
(`application/x-x509-ca-cert`, RFC 8894 §4.2.1.1); PKIOperation is refused with HTTP 503 and
nothing is stored, rather than some other key (the CA's) decrypting envelopes (SCEP-11)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from cryptography import x509

from tests import scep_client
from tests.integration.scep_support import STATIC, running_server

pytestmark = pytest.mark.slow


def test_without_an_ra_only_the_ca_certificate_is_served(template_dir: Path, tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    shutil.copytree(template_dir, ca_dir)
    config = ca_dir / "tetra.toml"
    config.write_text(re.sub(r"\[ra\.scep\]\n(.+\n)+", "", config.read_text()))
    with running_server(ca_dir, tmp_path) as server:
        reply = server.http("GET", f"{server.url}?operation=GetCACert")
        assert reply.status == 200 and reply.headers["content-type"] == "application/x-x509-ca-cert"
        assert x509.load_der_x509_certificate(reply.body) == server.issuing_ca()
        requester = scep_client.Requester.fresh()
        stranger = scep_client.Requester.fresh("not-an-ra").certificate
        message = scep_client.pkcs_req(requester, stranger, "no-ra.example.com", challenge=STATIC)
        before = server.counts()
        refused = server.post(message)
        assert refused.status == 503 and refused.headers["content-type"].startswith("text/plain")
        assert server.counts() == before
