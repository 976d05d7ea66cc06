"""The activity log of a real `tetra serve` (ca/activity.py, server/logs.py, server/requestlog.py),
in text and in JSON: an ACME issuance, a failed validation, a refusal, a request held and
approved by `tetra requests approve`, a revocation and a SIGTERM each leave exactly one event
with the request id the client was answered in X-Request-Id; the access log writes one line
per request when switched on and none when off, on aiohttp's routes and the OCSP fast path."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from interop.acme_helpers import Http01Responder, LoopbackDns
from protocols.acme.b64 import b64e
from tests.helpers import make_csr as make_api_csr
from tests.integration.serverproc import ServerProcess
from tests.tetra_process import tetra_command
from tests.unit.protocols.acme.support import BASE, AcmeClient, AcmeEnv, acme_environ, make_csr

pytest_plugins = ["tests.unit.protocols.acme.support"]

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
TEXT_LINE = re.compile(rf"^({ISO}) (\w+) ([\w.]+): (\S+)(.*)$")
TEXT_FIELD = re.compile(r' (\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_line(line: str) -> dict[str, Any] | None:
    """One log line as a dict (logger, level, event, fields), or None for other output."""
    if line.startswith("{"):
        entry: dict[str, Any] = json.loads(line)
        assert re.fullmatch(ISO, entry["time"]), entry
        return entry
    match = TEXT_LINE.match(line)
    if match is None:
        return None
    time, level, logger, first, rest = match.groups()
    entry = {"time": time, "level": level.lower(), "logger": logger, "event": first}
    if logger == "tetra.access":
        entry["event"] = "http.access"
    for key, value in TEXT_FIELD.findall(rest):
        entry[key] = json.loads(value) if value.startswith('"') else value
    return entry


def entries(text: str, logger: str) -> list[dict[str, Any]]:
    return [e for e in map(parse_line, text.splitlines()) if e is not None and e["logger"] == logger]


def one(events: list[dict[str, Any]], name: str, **expected: Any) -> dict[str, Any]:
    """The one event of that name whose fields hold `expected` (compared as text)."""
    found = [e for e in events if e["event"] == name and all(str(e.get(k)) == str(v) for k, v in expected.items())]
    assert len(found) == 1, (name, expected, [e for e in events if e["event"] == name])
    return found[0]


@dataclass
class Seen:
    """Every response the test's HTTP session got: (method, path, status, X-Request-Id)."""

    responses: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    def trace(self) -> aiohttp.TraceConfig:
        config = aiohttp.TraceConfig()

        async def on_end(_session: Any, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
            resp = params.response
            self.responses.append((params.method, params.url.path, resp.status, resp.headers.get("X-Request-Id")))

        config.on_request_end.append(on_end)
        return config


@dataclass
class Outcome:
    ids: dict[str, str]  # step -> the X-Request-Id it was answered with
    serial: str
    held: int
    approve: subprocess.CompletedProcess[str]
    seen: Seen
    log: str = ""  # the server's output


def request_id(headers: Mapping[str, str]) -> str:
    """The X-Request-Id among headers that may be a plain dict (header names have no case)."""
    return next(value for name, value in headers.items() if name.lower() == "x-request-id")


def ocsp_request(leaf: x509.Certificate, issuer: x509.Certificate) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, hashes.SHA1())
    return builder.build().public_bytes(Encoding.DER)


async def scenario(server: ServerProcess, env: AcmeEnv) -> Outcome:
    seen = Seen()
    ids: dict[str, str] = {}
    async with aiohttp.ClientSession(base_url=server.base, trace_configs=[seen.trace()]) as http:
        env.http = http
        client = AcmeClient(http)  # type: ignore[arg-type]
        await client.load_directory()
        registered = await client.register()
        assert registered.status == 201
        ids["account"] = request_id(registered.headers)

        # An issuance: order, http-01 validation, finalize.
        order_resp = await client.new_order(["ok.example.com"])
        ids["order"] = request_id(order_resp.headers)
        order, order_url = order_resp.json, order_resp.headers["Location"]
        authz = (await client.post(order["authorizations"][0], None)).json
        chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
        env.publish("http-01", "ok.example.com", chall["token"], client.key_authorization(chall["token"]))
        answered = await client.post(chall["url"], {})
        ids["validated"] = request_id(answered.headers)
        assert (await client.poll(order["authorizations"][0], ("valid", "invalid"))).json["status"] == "valid"
        wrong = await client.finalize(order, make_csr(["other.example.com"])[0])  # badCSR: the order stays ready
        assert wrong.status == 400 and wrong.problem_type == "badCSR", wrong.body
        ids["bad_csr"] = request_id(wrong.headers)
        finalized = await client.finalize(order, make_csr(["ok.example.com"])[0])
        assert finalized.status == 200, finalized.body
        ids["finalize"] = request_id(finalized.headers)
        order = (await client.poll(order_url, ("valid", "invalid"))).json
        pem = (await client.post(order["certificate"], None)).body
        chain = x509.load_pem_x509_certificates(pem)
        leaf = chain[0]

        # A failed validation: the token is never published.
        bad = (await client.new_order(["bad.example.com"])).json
        bad_authz = (await client.post(bad["authorizations"][0], None)).json
        bad_chall = next(c for c in bad_authz["challenges"] if c["type"] == "http-01")
        failed = await client.post(bad_chall["url"], {})
        ids["failed"] = request_id(failed.headers)
        assert (await client.poll(bad["authorizations"][0], ("valid", "invalid"))).json["status"] == "invalid"

        # A refusal by the profile's policy, through the management API.
        csr, _ = make_api_csr(["ip:192.0.2.1"])
        body = {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "email"}
        refused = await http.post("/api/v1/enroll", json=body, headers=server.auth)
        assert refused.status == 403
        ids["refused"] = request_id(refused.headers)

        # A request held for approval (an ACME profile with manual approval).
        held_order = await client.new_order(["held.example.com"], profile="held-tls")
        assert held_order.status == 201, held_order.body
        await client.authorize(held_order.json, env)
        held = await client.finalize(held_order.json, make_csr(["held.example.com"])[0])
        assert held.status == 200 and held.json["status"] == "processing", held.body
        ids["held"] = request_id(held.headers)

        # The revocation of the first certificate, by its account.
        revoked = await client.post(
            client.directory["revokeCert"], {"certificate": b64e(leaf.public_bytes(Encoding.DER)), "reason": 1}
        )
        assert revoked.status == 200, revoked.body
        ids["revoked"] = request_id(revoked.headers)

    # OCSP on the fast path (server/plain_http.py), POST and GET: a connection of its own, as a
    # kept-alive one that carried another request belongs to aiohttp.
    der = ocsp_request(leaf, chain[1])
    async with aiohttp.ClientSession(base_url=server.base, trace_configs=[seen.trace()]) as http:
        post = await http.post("/ocsp", data=der, headers={"Content-Type": "application/ocsp-request"})
        assert post.status == 200
        get = await http.get("/ocsp/" + base64.b64encode(der).decode())
        assert get.status == 200

    held_id = one(entries(server.log_path.read_text(), "tetra.activity"), "request.held")["held_request"]
    approve = subprocess.run(
        [*tetra_command(), "requests", "approve", str(held_id), "--operator", "alice", "--config", str(server.config)],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert approve.returncode == 0, approve.stderr
    return Outcome(ids, format(leaf.serial_number, "x"), int(held_id), approve, seen)


def run(ca_dir: Path, tmp_path: Path, loopback: tuple[LoopbackDns, Http01Responder], **env: str) -> Outcome:
    profile = (ca_dir / "profiles" / "tls-server.toml").read_text()
    held = profile.replace('approval = "auto"', 'approval = "manual"').replace('lint = "pkilint"', 'lint = "none"')
    assert held != profile
    (ca_dir / "profiles" / "held-tls.toml").write_text(held)
    dns_server, responder = loopback
    environ = acme_environ(
        f"sqlite:///{ca_dir / 'tetra.db'}",
        dns_server,
        responder,
        {
            "TETRA_SERVER__HTTPS_URL": BASE.removesuffix("/acme"),
            "TETRA_SERVER__PROTOCOLS": '["acme", "ocsp"]',
            **env,
        },
    )
    server = ServerProcess(ca_dir / "tetra.toml", environ["TETRA_DATABASE__URL"], tmp_path / "serve.log", environ)
    server.wait_ready()
    try:
        outcome = asyncio.run(scenario(server, AcmeEnv(dns_server, responder, ca_dir)))
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log_tail()
    outcome.log = server.log_path.read_text()
    return outcome


def check_events(log: str, outcome: Outcome) -> None:
    events = entries(log, "tetra.activity")
    ids = outcome.ids
    one(events, "acme.account.created", request_id=ids["account"], protocol="acme")
    one(events, "acme.order.created", request_id=ids["order"], protocol="acme", profile="tls-server")
    valid = one(events, "acme.authorization.valid", request_id=ids["validated"], identifier="dns:ok.example.com")
    assert valid["method"] == "http-01"
    failed = one(events, "acme.validation.failed", request_id=ids["failed"], identifier="dns:bad.example.com")
    assert failed["reason"] and failed["detail"] and failed["protocol"] == "acme"
    issued = one(events, "certificate.issued", request_id=ids["finalize"], serial=outcome.serial)
    assert (
        issued["protocol"] == "acme" and issued["profile"] == "tls-server" and issued["subject"] == "CN=ok.example.com"
    )
    refused = one(events, "issuance.refused", request_id=ids["refused"], protocol="api", profile="email")
    assert refused["reason"] == "rejected_by_policy" and "SAN type ip not allowed" in refused["detail"]
    bad_csr = one(events, "issuance.refused", request_id=ids["bad_csr"], protocol="acme", profile="tls-server")
    assert bad_csr["reason"] == "bad_csr" and "other.example.com" in bad_csr["detail"]
    one(events, "request.held", request_id=ids["held"], protocol="acme", profile="held-tls", held_request=outcome.held)
    revoked = one(events, "certificate.revoked", request_id=ids["revoked"], serial=outcome.serial)
    assert revoked["protocol"] == "acme" and revoked["reason"] == "keyCompromise" and revoked["by"].startswith("acme")
    for name in ("server.starting", "server.serving", "server.stopped"):
        one(events, name)
    one(events, "server.stopping", signal="SIGTERM")
    counts = Counter(e["event"] for e in events)
    # Exactly once each: the held request's issuance happens in the command, not the server.
    assert counts["certificate.issued"] == 1 and counts["issuance.refused"] == 2, counts
    assert counts["acme.order.created"] == 3 and counts["acme.authorization.valid"] == 2, counts
    assert counts["acme.account.created"] == 1 and counts["acme.validation.failed"] == 1, counts
    assert all(
        re.fullmatch(r"[0-9a-f]{16}", e["request_id"]) for e in events if not e["event"].startswith(("server", "crl"))
    )

    # The approval and the issuance it made are the command's events, on its stderr, with its id.
    command = entries(outcome.approve.stderr, "tetra.activity")
    approved = one(command, "request.approved", held_request=outcome.held, by="alice", protocol="acme")
    issued_by_command = one(command, "certificate.issued", profile="held-tls", protocol="acme")
    assert approved["request_id"] == issued_by_command["request_id"] and approved["request_id"].startswith("cli-")
    assert issued_by_command["subject"] == "CN=held.example.com"
    assert len(command) == 2, outcome.approve.stderr


@pytest.mark.slow
def test_text_log_has_each_event_once_and_no_access_lines(
    ca_dir: Path, tmp_path: Path, loopback: tuple[LoopbackDns, Http01Responder]
) -> None:
    """OPS-13, OPS-14: the default text format, ISO 8601 UTC millisecond times, each event once
    with its request id, protocol, profile, subject or serial and the refusal's reason; the access
    log is off: no access line, and the OCSP fast path sends no X-Request-Id."""
    outcome = run(ca_dir, tmp_path, loopback)
    log = outcome.log
    assert not any(line.startswith("{") for line in log.splitlines())
    check_events(log, outcome)
    assert entries(log, "tetra.access") == [] and "tetra.access" not in log
    ocsp_ids = [rid for method, path, _, rid in outcome.seen.responses if path.startswith("/ocsp")]
    assert ocsp_ids == [None, None]
    assert all(rid for _, path, _, rid in outcome.seen.responses if not path.startswith("/ocsp"))


@pytest.mark.slow
def test_json_log_has_each_event_once_and_one_access_line_per_request(
    ca_dir: Path, tmp_path: Path, loopback: tuple[LoopbackDns, Http01Responder]
) -> None:
    """OPS-13, OPS-14: `[logging] format = "json"`: every line one JSON object with the event's
    fields as members; with `access_log = true` one access line per request the client made (and
    the readiness probe's), with method, path, status, bytes, duration, request id and address,
    on aiohttp's routes and the OCSP fast path alike."""
    outcome = run(ca_dir, tmp_path, loopback, TETRA_LOGGING__FORMAT="json", TETRA_LOGGING__ACCESS_LOG="true")
    log = outcome.log
    lines = [ln for ln in log.splitlines() if ln.startswith("{")]
    assert lines and all(isinstance(json.loads(ln), dict) for ln in lines)
    check_events(log, outcome)
    assert all(line.startswith("{") for line in outcome.approve.stderr.splitlines())

    access = entries(log, "tetra.access")
    by_id = Counter(a["request_id"] for a in access)
    assert all(count == 1 for count in by_id.values()), by_id
    client = [a for a in access if a["path"] != "/readyz"]  # wait_ready's probe is the rest
    assert len(client) == len(outcome.seen.responses)
    logged = {a["request_id"]: a for a in client}
    for method, path, status, request_id in outcome.seen.responses:
        assert request_id is not None, (method, path)
        line = logged[request_id]
        assert (line["method"], line["path"][:80], line["status"]) == (method, path[:80], status)
        assert line["remote"] == "127.0.0.1" and line["bytes"] > 0 and line["duration_ms"] >= 0
    assert [a["method"] for a in client if a["path"].startswith("/ocsp")] == ["POST", "GET"]
