"""What ACME leaves in the logs: a record for every refused request (SEC-06) and never a secret
(SEC-05), through the real app and a real `tetra serve`."""

from __future__ import annotations

import base64
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select
from sqlalchemy.engine import Connection

from ca.service import CertificateAuthority
from ca.store.tables import audit_log
from protocols.acme.b64 import b64e
from protocols.acme.jwk import jwk_from_key
from protocols.acme.jws import sign_jws, sign_mac
from server.app import CA
from tests.unit.protocols.acme.support import AcmeClient, AcmeEnv, Response, make_csr, start_env

pytest_plugins = ["tests.unit.protocols.acme.support"]


@dataclass
class RecordingClient(AcmeClient):
    """An AcmeClient that keeps every response to its POSTs (problem documents included)."""

    seen: list[Response] = field(default_factory=list)

    async def raw_post(
        self, url: str, body: bytes, content_type: str = "application/jose+json", path: str | None = None
    ) -> Response:
        resp = await super().raw_post(url, body, content_type, path)
        self.seen.append(resp)
        return resp


def eab(client: AcmeClient, key_id: str, hmac_key: bytes, alg: str = "HS256") -> dict[str, str]:
    """An externalAccountBinding over the client's key (RFC 8555 §7.3.4)."""
    payload = json.dumps(jwk_from_key(client.key.public_key())).encode()
    return sign_mac(hmac_key, payload, {"alg": alg, "kid": key_id, "url": client.directory["newAccount"]})


async def audit_events(ca: CertificateAuthority) -> list[tuple[str, str]]:
    def q(conn: Connection) -> list[tuple[str, str]]:
        return [(r.action, r.target) for r in conn.execute(select(audit_log).order_by(audit_log.c.seq))]

    return await ca.db.read(q)


async def test_every_refused_request_is_logged_once_naming_its_problem(
    acme_sqlite: AcmeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """SEC-06: each refused request, whatever refused it (JWS checks, nonce, account, resource,
    method), leaves exactly one record naming the method, path, source and problem type, quoted
    and cut to a bounded length; accepted requests leave none."""
    env = acme_sqlite
    client = RecordingClient(env.http)
    assert (await client.register()).status == 201
    order = await client.new_order(["log.example.com"])
    order_url = order.headers["Location"]
    stranger = RecordingClient(env.http)
    assert (await stranger.register()).status == 201
    caplog.set_level(logging.INFO, logger="tetra.acme")
    caplog.clear()
    client.seen.clear()
    stranger.seen.clear()
    kid = client.kid or ""

    used = await client.fresh_nonce()
    assert (await client.post(kid, None, nonce=used)).status == 200  # accepted: no record
    await client.post(kid, None, nonce=used, retry_bad_nonce=False)  # badNonce
    await client.raw_post(kid, b"{not json")  # malformed
    await client.raw_post(kid, b"{}", content_type="application/json")  # 415
    await client.post(kid, None, extra={"kid": kid + "9"})  # accountDoesNotExist
    await client.post(kid, None, extra={"url": kid + "x" * 5000})  # malformed, with a long detail
    await client.finalize(order.json, make_csr(["log.example.com"])[0])  # orderNotReady
    await client.new_order(["host.example.invalid"])  # rejectedIdentifier
    await stranger.post(order_url, None)  # unauthorized
    get = await env.http.get(client.path(order_url))  # 405 on a POST-as-GET resource
    assert get.status == 405
    responses = [r for r in client.seen + stranger.seen if r.status >= 400]
    expected = sorted([r.problem_type for r in responses] + ["malformed"])  # and the 405's
    assert len(expected) == 9

    records = [r for r in caplog.records if r.name == "tetra.acme"]
    logged = [
        re.fullmatch(r"ACME (POST|GET) /\S+ from 127\.0\.0\.1 refused: (\w+) \d{3} .+", r.getMessage()) for r in records
    ]
    assert all(logged) and all(r.levelno == logging.INFO for r in records), [r.getMessage() for r in records]
    assert sorted(m.group(2) for m in logged if m) == expected
    assert all(len(r.getMessage()) < 400 for r in records)
    long_url = next(r.getMessage() for r in records if "x" * 100 in r.getMessage())
    assert "x" * 300 not in long_url


async def test_every_issuance_and_revocation_has_an_audit_event(acme_env: AcmeEnv) -> None:
    """SEC-06: an ACME issuance leaves intent + issued events and a revocation a revoked event,
    naming the certificate, in the store's audit chain, which verifies end to end."""
    ca: CertificateAuthority = acme_env.app[CA]
    client = acme_env.client()
    assert (await client.register()).status == 201
    _, pem, _ = await client.issue(acme_env, ["audit.example.com"])
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    target = f"{ca.default_issuer}/{format(leaf.serial_number, 'x')}"
    resp = await client.post(client.directory["revokeCert"], {"certificate": b64e(leaf.public_bytes(Encoding.DER))})
    assert resp.status == 200, resp.body
    about = [action for action, on in await audit_events(ca) if on == target]
    assert about == ["certificate.intent", "certificate.issued", "certificate.revoked"]
    report = await ca.audit.verify()
    assert report.ok, report.problems


def secret_forms(ca_dir: Path, ca: CertificateAuthority, hmac_keys: list[bytes]) -> dict[str, str]:
    """Every spelling of our secrets a log line or a problem document might carry."""
    forms = {
        "CA key passphrase": (ca_dir / "secrets" / "passphrase").read_text().strip(),
        "API token": (ca_dir / "secrets" / "api-token").read_text().strip(),
        "PEM header": "PRIVATE KEY-----",
    }
    for name, issuer in ca.issuers.items():
        der = issuer.signer.private_key().private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        forms[f"{name} key (base64)"] = base64.b64encode(der).decode()[40:80]  # past the fixed prefix
    for i, key in enumerate(hmac_keys):
        forms[f"HMAC key {i} (base64url)"] = b64e(key)
        forms[f"HMAC key {i} (base64)"] = base64.b64encode(key).decode().rstrip("=")
        forms[f"HMAC key {i} (hex)"] = key.hex()
        forms[f"HMAC key {i} (bytes)"] = repr(key)[2:-1]
    return forms


def assert_no_secret(text: str, forms: dict[str, str], where: str) -> None:
    for name, value in forms.items():
        assert value not in text, f"{name} in {where}"


async def test_secrets_never_reach_logs_or_problem_documents(
    aiohttp_client: Any, ca_dir: Path, loopback: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """SEC-05: with every logger at DEBUG, EAB registration (good, bad MAC, unknown key id,
    reused key), issuance, revocation and refused requests leave neither the EAB HMAC key (raw,
    base64url, base64, hex) nor the CA key's passphrase, the API token or any private key in a
    log record or in any reply."""
    caplog.set_level(logging.DEBUG)
    env = await start_env(
        aiohttp_client,
        ca_dir,
        f"sqlite:///{ca_dir / 'tetra.db'}",
        loopback,
        {"TETRA_ACME__EXTERNAL_ACCOUNT_REQUIRED": "true"},
    )
    ca: CertificateAuthority = env.app[CA]
    key_id, hmac_key = await ca.credentials.create_mac_key("acme")
    client = RecordingClient(env.http)
    await client.load_directory()
    await client.register()  # externalAccountRequired
    await client.register(externalAccountBinding=eab(client, key_id, b"wrong" * 8))  # bad MAC
    await client.register(externalAccountBinding=eab(client, key_id, hmac_key, alg="HS1"))  # refused alg
    await client.register(externalAccountBinding=eab(client, "no-such-key", hmac_key))
    assert (await client.register(externalAccountBinding=eab(client, key_id, hmac_key))).status == 201
    other = RecordingClient(env.http, directory=client.directory)
    assert (await other.register(externalAccountBinding=eab(other, key_id, hmac_key))).status == 403

    _, pem, _ = await client.issue(env, ["secret.example.com"])
    der = x509.load_pem_x509_certificates(pem.encode())[0].public_bytes(Encoding.DER)
    assert (await client.post(client.directory["revokeCert"], {"certificate": b64e(der)})).status == 200
    order = (await client.new_order(["secret2.example.com"])).json
    await client.authorize(order, env)
    issuer_key = ca.issuers[ca.default_issuer].signer.private_key()
    assert (await client.finalize(order, make_csr(["secret2.example.com"], key=issuer_key)[0])).status == 400
    forged = json.loads(sign_jws(client.key, b"{}", {"nonce": await client.fresh_nonce(), "url": client.kid}))
    forged["signature"] = b64e(b"\0" * 64)
    await client.raw_post(client.kid or "", json.dumps(forged).encode())  # signature does not verify
    await client.post(client.kid or "", None, nonce="A" * 22, retry_bad_nonce=False)  # badNonce

    forms = secret_forms(ca_dir, ca, [hmac_key])
    problems = [r for r in client.seen + other.seen if r.status >= 400]
    assert len(problems) >= 8
    assert len(caplog.records) > 50  # DEBUG really was on
    assert_no_secret(caplog.text, forms, "the log")
    for resp in client.seen + other.seen:
        assert_no_secret(resp.body.decode(errors="replace") + json.dumps(resp.headers), forms, "a reply")
