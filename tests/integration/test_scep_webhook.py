"""SCEP-16: a profile with a validation webhook, end to end: `tetra serve` asks a loopback HTTPS
webhook about each PKCSReq and issues only on its yes.

The webhook (tests/scep_webhook_server.py) gets the documented JSON (transaction ID, profile,
the CSR's challengePassword, the CSR, subject, subjectAltNames). A no, a timeout and an
unreachable webhook each answer CertRep FAILURE badRequest with nothing issued or stored; a 5xx
followed by a yes is retried and issues.
"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests import scep_client
from tests.integration.est_support import _profile_from_device
from tests.integration.scep_support import ScepServer, scep_server
from tests.pkilint_check import assert_certificate_lints_clean
from tests.scep_webhook_server import YES, Answer, TlsFiles, WebhookServer, make_tls, webhook_server
from tests.tetra_process import free_port

pytestmark = pytest.mark.slow

TIMEOUT = 1.0  # webhook_timeout of the profiles below: the timeout test waits 2 x this


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture(scope="module")
def hook(tls: TlsFiles) -> Iterator[WebhookServer]:
    with webhook_server(YES, tls=tls) as server:
        yield server


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, template_dir: Path, hook: WebhookServer, tls: TlsFiles
) -> Iterator[ScepServer]:
    """Profiles ``hooked`` (the loopback webhook, one retry) and ``unreachable`` (a closed port)."""
    tmp = tmp_path_factory.mktemp("scep-webhook")
    ca_dir = tmp / "ca"
    shutil.copytree(template_dir, ca_dir)
    shutil.copy(tls.ca, ca_dir / "webhook-ca.pem")
    for name in ("hooked", "unreachable"):
        _profile_from_device(ca_dir / "profiles", name)
    with (ca_dir / "tetra.toml").open("a") as config:
        config.write(
            f"""
[scep.profiles.hooked]
webhook_url = "{hook.url}"
webhook_timeout = {TIMEOUT}
webhook_retries = 1
webhook_ca_file = "webhook-ca.pem"

[scep.profiles.unreachable]
webhook_url = "https://127.0.0.1:{free_port()}/validate"
webhook_timeout = {TIMEOUT}
webhook_retries = 1
webhook_ca_file = "webhook-ca.pem"
"""
        )
    yield from scep_server(ca_dir, tmp)


def enrol(server: ScepServer, profile: str, name: str) -> tuple[scep_client.CertRep, scep_client.Message]:
    requester = scep_client.Requester.fresh(name)
    message = scep_client.pkcs_req(requester, server.ra_certificate(), name, [name], challenge=f"mdm-token-for-{name}")
    return server.exchange(message, requester, path=f"/scep/{profile}/pkiclient.exe"), message


def refused(server: ScepServer, profile: str, name: str) -> str:
    """Enrol and expect FAILURE badRequest with nothing issued; returns the failInfoText."""
    before = server.counts()
    reply, _ = enrol(server, profile, name)
    assert (reply.status, reply.fail_info) == (scep_client.FAILURE, scep_client.BAD_REQUEST), reply
    assert server.counts() == before, "a refused enrolment stored something"
    return reply.fail_info_text or ""


def test_scep16_yes_issues_and_the_webhook_saw_the_request(server: ScepServer, hook: WebhookServer) -> None:
    """SCEP-16: on {"allow": true} the certificate is issued; the webhook got the documented JSON."""
    hook.script(YES)
    reply, message = enrol(server, "hooked", "router1.example.com")
    assert reply.status == scep_client.SUCCESS, reply
    certificate = reply.certificate
    assert_certificate_lints_clean(certificate.public_bytes(Encoding.DER))
    [query] = hook.queries
    assert query["profile"] == "hooked"
    assert query["transaction_id"] == message.transaction_id
    assert query["challenge"] == "mdm-token-for-router1.example.com"
    assert query["subject"] == "CN=router1.example.com"
    assert query["sans"] == ["dns:router1.example.com"]
    csr = x509.load_der_x509_csr(base64.b64decode(query["csr"]))
    assert csr.public_key() == certificate.public_key()


def test_scep16_no_refuses_with_the_reason(server: ScepServer, hook: WebhookServer) -> None:
    """SCEP-16: {"allow": false, "reason": ...}: FAILURE badRequest naming the reason; nothing issued."""
    hook.script(Answer.verdict(allow=False, reason="unknown device"))
    assert "unknown device" in refused(server, "hooked", "router2.example.com")
    assert len(hook.queries) == 1


def test_scep16_timeout_refuses(server: ScepServer, hook: WebhookServer) -> None:
    """SCEP-16: a webhook slower than webhook_timeout, twice (one retry): FAILURE badRequest."""
    hook.script(Answer(delay=TIMEOUT * 3))
    assert "no answer within" in refused(server, "hooked", "router3.example.com")
    assert len(hook.queries) == 2


def test_scep16_unreachable_refuses(server: ScepServer) -> None:
    """SCEP-16: nothing listening at the webhook URL: FAILURE badRequest; nothing issued."""
    assert "cannot reach the webhook" in refused(server, "unreachable", "router4.example.com")


def test_scep16_5xx_is_retried_then_issues(server: ScepServer, hook: WebhookServer) -> None:
    """SCEP-16: a 503 and then a yes: retried once and issued."""
    hook.script(Answer(503, b""), YES)
    reply, _ = enrol(server, "hooked", "router5.example.com")
    assert reply.status == scep_client.SUCCESS, reply
    assert_certificate_lints_clean(reply.certificate.public_bytes(Encoding.DER))
    assert len(hook.queries) == 2
