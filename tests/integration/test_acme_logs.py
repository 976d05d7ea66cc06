"""What ACME leaves in the logs: a record for every refused request (SEC-06) and never a secret
(SEC-05), through the real app and a real `tetra serve`."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import subprocess
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from ca.config_secrets import read_secret
from ca.service import CertificateAuthority
from ca.signers.software import load_encrypted_key
from ca.store.db import Tx
from ca.store.tables import audit_log
from interop.acme_helpers import Http01Responder, LoopbackDns
from protocols.acme.b64 import b64d, b64e
from protocols.acme.jwk import jwk_from_key
from protocols.acme.jws import sign_jws, sign_mac
from server.app import CA
from tests.integration.serverproc import ServerProcess
from tests.tetra_process import tetra_command
from tests.unit.protocols.acme.support import (
    BASE,
    AcmeClient,
    AcmeEnv,
    Response,
    acme_environ,
    make_csr,
    start_env,
)

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


def secret_forms(ca_dir: Path, hmac_keys: list[bytes]) -> dict[str, str]:
    """Every spelling of our secrets a log line or a problem document might carry: the key
    passphrase, the API token, each CA/RA private key and each EAB HMAC key."""
    passphrase = read_secret(file=str(ca_dir / "secrets" / "passphrase"))
    forms = {
        "key passphrase": passphrase.decode(),
        "API token": (ca_dir / "secrets" / "api-token").read_text().strip(),
        "PEM header": "PRIVATE KEY-----",
    }
    for path in sorted((ca_dir / "keys").glob("*.key")):
        der = load_encrypted_key(path, passphrase).private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
        forms[f"{path.name} (base64)"] = base64.b64encode(der).decode()[40:80]  # past the fixed prefix
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
    header = {"nonce": await client.fresh_nonce(), "url": client.kid, "kid": client.kid}
    forged = json.loads(sign_jws(client.key, b"{}", header))
    forged["signature"] = b64e(b"\0" * 64)
    await client.raw_post(client.kid or "", json.dumps(forged).encode())  # signature does not verify
    await client.post(client.kid or "", None, nonce="A" * 22, retry_bad_nonce=False)  # badNonce

    forms = secret_forms(ca_dir, [hmac_key])
    problems = [r.problem_type for r in client.seen + other.seen if r.status >= 400]
    assert {"externalAccountRequired", "unauthorized", "malformed", "badCSR", "badNonce"} <= set(problems)
    assert any(r.levelno == logging.DEBUG for r in caplog.records)  # DEBUG really was on
    assert_no_secret(caplog.text, forms, "the log")
    for resp in client.seen + other.seen:
        assert_no_secret(resp.body.decode(errors="replace") + json.dumps(resp.headers), forms, "a reply")


async def test_store_failure_while_saving_an_eab_key_keeps_the_key_out_of_logs(
    ca: CertificateAuthority, ca_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SEC-05: when the database refuses the insert of a new EAB key (a trigger, as a full disk
    would), neither the DEBUG log nor the exception chain a caller may print shows the key:
    SQLAlchemy would put the statement's parameters into both."""
    if ca.db.backend == "postgresql":
        refuse = [
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON credentials FOR EACH ROW EXECUTE FUNCTION refuse()",
        ]
    else:
        refuse = ["CREATE TRIGGER refuse BEFORE INSERT ON credentials BEGIN SELECT RAISE(ABORT, 'disk full'); END"]

    def install(tx: Tx) -> None:
        for statement in refuse:
            tx.conn.execute(text(statement))

    await ca.db.write(install)
    caplog.set_level(logging.DEBUG)
    hmac_key = secrets.token_bytes(32)
    with pytest.raises(Exception) as failed:  # StoreUnavailable; SQLite calls a trigger's refusal a constraint
        await ca.credentials.create_mac_key("acme", secret=hmac_key)
    assert "disk full" in str(failed.value)
    chain = "".join(traceback.format_exception(failed.value))
    assert_no_secret(caplog.text, secret_forms(ca_dir, [hmac_key]), "the log")
    assert_no_secret(chain, secret_forms(ca_dir, [hmac_key]), "the exception")


@pytest.mark.slow
def test_tetra_serve_and_the_eab_command_keep_secrets_out_of_their_output(
    ca_dir: Path, tmp_path: Path, loopback: tuple[LoopbackDns, Http01Responder]
) -> None:
    """SEC-05 with real processes: `tetra serve` logging at DEBUG and `tetra acme eab create`.
    The command prints the HMAC key on stdout (that is its job) and nowhere else; the server's
    output after registrations with a bad and a good MAC, an issuance and refused requests
    holds no secret, and does hold the refusals (SEC-06)."""
    dns_server, responder = loopback
    env = acme_environ(
        f"sqlite:///{ca_dir / 'tetra.db'}",
        dns_server,
        responder,
        {
            "TETRA_SERVER__HTTPS_URL": BASE.removesuffix("/acme"),
            "TETRA_LOGGING__LEVEL": "debug",
            "TETRA_ACME__EXTERNAL_ACCOUNT_REQUIRED": "true",
        },
    )
    server = ServerProcess(ca_dir / "tetra.toml", env["TETRA_DATABASE__URL"], tmp_path / "serve.log", env)
    try:
        server.wait_ready()
        command = [*tetra_command(), "acme", "eab", "create", "--config", str(ca_dir / "tetra.toml")]
        created = subprocess.run(command, env=server.env, capture_output=True, text=True, timeout=60, check=True)
        key_id = re.search(r"key id:\s+(\S+)", created.stdout).group(1)  # type: ignore[union-attr]
        hmac_key = b64d(re.search(r"hmac key:\s+(\S+)", created.stdout).group(1))  # type: ignore[union-attr]

        async def run() -> None:
            async with aiohttp.ClientSession(base_url=server.base) as http:
                client = AcmeClient(http)  # type: ignore[arg-type]
                await client.load_directory()
                assert (await client.register()).problem_type == "externalAccountRequired"
                bad = await client.register(externalAccountBinding=eab(client, key_id, b"wrong" * 8))
                assert bad.status == 403
                good = await client.register(externalAccountBinding=eab(client, key_id, hmac_key))
                assert good.status == 201, good.body
                await client.issue(AcmeEnv(dns_server, responder, ca_dir, http=http), ["serve.example.com"])
                await client.post(client.kid or "", None, nonce="A" * 22, retry_bad_nonce=False)
                await client.raw_post(client.kid or "", b"{not json")

        asyncio.run(run())
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert " DEBUG " in log and "refused: unauthorized 403" in log and "refused: badNonce 400" in log
    forms = secret_forms(ca_dir, [hmac_key])
    assert_no_secret(log, forms, "the server's output")
    assert_no_secret(created.stderr, forms, "the command's stderr")
    assert b64e(hmac_key) in created.stdout
