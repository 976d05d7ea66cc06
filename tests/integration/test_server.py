"""The server skeleton through pytest-aiohttp: trust bundles, health, metrics, the management API's
first calls (enrol, poll, revoke) on the public HTTP listener."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Pending, Requester
from ca.store.repositories import CertificateFilter
from server.app import CA, build_app
from server.config import ServerConfig
from server.wiring import read_config
from tests.helpers import make_csr
from tests.integration.manage.manage_support import problem
from tests.integration.operator_api import MANAGE_ON_HTTP, serve_on_http
from tests.integration.serverproc import ServerProcess

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def api_config(ca_dir: Path, db_url: str) -> ServerConfig:
    return read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": db_url, **MANAGE_ON_HTTP})


def _enroll_body(names: list[str], profile: str = "tls-server", **kw: Any) -> dict[str, Any]:
    csr, _ = make_csr(names, **kw)
    return {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": profile}


async def test_trust_bundles_and_health(aiohttp_client: Client, api_config: ServerConfig) -> None:
    client = await aiohttp_client(build_app(api_config))
    roots = await client.get("/roots.pem")
    assert roots.status == 200 and roots.content_type == "application/pem-certificate-chain"
    root = x509.load_pem_x509_certificates(await roots.read())
    assert [c.subject.rfc4514_string() for c in root] == ["CN=Tetra Demo Root CA,O=Tetra"]
    inter = x509.load_pem_x509_certificates(await (await client.get("/intermediates.pem")).read())
    assert [c.subject.rfc4514_string() for c in inter] == ["CN=Tetra Demo Issuing CA,O=Tetra"]
    der = await (await client.get("/ca/issuing-ca.cer")).read()
    assert x509.load_der_x509_certificate(der) == inter[0]
    assert (await client.get("/ca/nope.cer")).status == 404
    assert (await client.get("/healthz")).status == 200
    ready = await client.get("/readyz")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"database": "ok", "signer:issuing-ca": "ok", "signer:ra": "ok"}


async def test_api_enroll_revoke_and_metrics(aiohttp_client: Client, api_config: ServerConfig) -> None:
    client, auth = await serve_on_http(aiohttp_client, build_app(api_config))
    resp = await client.post("/api/v1/enroll", json=_enroll_body(["api.example.com"]), headers=auth)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert body["serial"] == format(cert.serial_number, "x")
    revoked = await client.post("/api/v1/revoke", json={"serial": body["serial"], "reason": "superseded"}, headers=auth)
    assert revoked.status == 200 and (await revoked.json())["status"] == "revoked"
    again = await client.post("/api/v1/revoke", json={"serial": body["serial"]}, headers=auth)
    await problem(again, 409, "conflict")
    metrics = await (await client.get("/metrics")).text()
    assert 'tetra_certificates_issued_total{profile="tls-server",protocol="api"} 1.0' in metrics
    assert 'tetra_issuance_seconds_count{profile="tls-server",protocol="api"} 1.0' in metrics
    assert 'tetra_certificates_revoked_total{issuer="issuing-ca"} 1.0' in metrics
    assert 'tetra_http_requests_total{method="POST",protocol="api",status="201"} 1.0' in metrics


async def test_api_refusals_are_clear(aiohttp_client: Client, api_config: ServerConfig) -> None:
    client, auth = await serve_on_http(aiohttp_client, build_app(api_config))
    no_token = await client.post("/api/v1/enroll", json=_enroll_body(["a.example.com"]))
    await problem(no_token, 401, "unauthenticated")
    assert no_token.headers["WWW-Authenticate"] == 'Bearer realm="tetra-api"'
    wrong = await client.post(
        "/api/v1/enroll", json=_enroll_body(["a.example.com"]), headers={"Authorization": "Bearer x"}
    )
    assert (await problem(wrong, 401, "unauthenticated"))["detail"] == "invalid token"
    bad_json = await client.post("/api/v1/enroll", data=b"{nope", headers=auth)
    assert (await problem(bad_json, 400, "malformed"))["detail"] == "the body is not JSON"
    policy = await client.post("/api/v1/enroll", json=_enroll_body(["ip:192.0.2.1"], profile="email"), headers=auth)
    assert (await problem(policy, 403, "policy"))["detail"] == "profile email: SAN type ip not allowed"
    huge = await client.post("/api/v1/enroll", data=b"x" * (200 * 1024), headers=auth)
    await problem(huge, 413, "too-large")
    garbage = await client.post("/api/v1/enroll", json={"csr": "garbage", "profile": "tls-server"}, headers=auth)
    await problem(garbage, 400, "bad-csr")
    listed = await client.app[CA].certificates.list(CertificateFilter(profile="tls-server"))
    assert listed == []


async def test_api_poll_answers_pending_then_issued(aiohttp_client: Client, api_config: ServerConfig) -> None:
    """OPS-11: a request held for approval polls as 202 with its id and Retry-After, then as 200
    with the certificate and its chain once an operator approved it; a malformed id is 400."""
    client, auth = await serve_on_http(aiohttp_client, build_app(api_config))
    authority = client.app[CA]
    csr, _ = make_csr([], cn="Build Bot")
    held = await authority.enroll(
        await authority.decide(
            enrollment_from_csr(
                csr, protocol="est", profile_name="code-signing", requester=Requester("est-user", AuthMethod.PASSWORD)
            )
        )
    )
    assert isinstance(held, Pending)
    pending = await client.get(f"/api/v1/requests/{held.request_id}", headers=auth)
    assert pending.status == 202 and pending.headers["Retry-After"] == str(held.retry_after)
    waiting = await pending.json()  # the request's record now, with the id to poll
    assert (waiting["request_id"], waiting["status"]) == (held.request_id, "pending"), waiting
    await authority.approve(held.request_id, operator="alice")
    issued = await client.get(f"/api/v1/requests/{held.request_id}", headers=auth)
    assert issued.status == 200, await issued.text()
    body = await issued.json()
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    assert body["serial"] == format(cert.serial_number, "x") and body["issuer"] == "issuing-ca"
    assert cert.subject.rfc4514_string() == "CN=Build Bot"
    assert x509.load_pem_x509_certificates(body["chain"].encode())
    malformed = await client.get("/api/v1/requests/twelve", headers=auth)
    await problem(malformed, 400, "malformed")


async def test_readyz_reports_an_unreachable_database(aiohttp_client: Client, ca_dir: Path, db_url: str) -> None:
    """ST-04: the database goes away after start-up: readiness says so; issuance answers 503 + Retry-After."""
    config = read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": db_url})
    app = build_app(config)
    client = await aiohttp_client(app)
    ca = app[CA]
    await ca.db.close()
    from ca.store.db import Database

    ca.db.__dict__.update(Database("postgresql://postgres@127.0.0.1:1/none", timeout=3).__dict__)
    ready = await client.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["database"].startswith("database unavailable")


@pytest.mark.slow
def test_sighup_reloads_profiles_and_logs_are_json(ca_dir: Path, tmp_path: Path) -> None:
    db_url = f"sqlite:///{ca_dir / 'tetra.db'}"
    server = ServerProcess(ca_dir / "tetra.toml", db_url, tmp_path / "s.log", {"TETRA_LOGGING__FORMAT": "json"})
    try:
        server.wait_ready()

        def validity_days() -> float:
            data = json.dumps(_enroll_body(["r.example.com"], profile="tls-client")).encode()
            req = urllib.request.Request(
                f"{server.base}/api/v1/enroll", data=data, headers={**server.auth, "Content-Type": "application/json"}
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                cert = x509.load_pem_x509_certificate(json.loads(resp.read())["certificate"].encode())
            return ((cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() + 1) / 86400

        assert validity_days() == 90
        profile = ca_dir / "profiles" / "tls-client.toml"
        profile.write_text(profile.read_text().replace("default_days = 90", "default_days = 30"))
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "profiles reloaded" not in server.log_path.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert validity_days() == 30
    finally:
        server.stop()
    lines = [ln for ln in server.log_path.read_text().splitlines() if ln.startswith("{")]
    assert lines and all(json.loads(ln)["level"] for ln in lines)
    assert any(json.loads(ln)["message"].startswith("profiles reloaded") for ln in lines)
