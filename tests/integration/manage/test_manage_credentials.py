"""The management API's protocol credentials (EAB keys, SCEP one-time challenges, EST users,
CMP secrets), through the whole app served in-process: each secret shown once in the 201 answer
and never in a listing, a log line or an audit row (OPS-10); one audit event per change naming
the user (OPS-07); the protocol commands' own refusals as problem documents (OPS-12)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import audit_rows, last_seq, problem
from tests.operator_tokens import bearer, make_token

CREATIONS = {
    "acme-eab": {"profile": "tls-server"},
    "scep-challenge": {"profile": "device", "ttl": "2h", "cn": "printer-7", "dns": ["Printer-7.example.com"]},
    "est-user": {"username": "router-1", "profile": "device"},
    "cmp-secret": {"reference": "lab-ref", "profile": "device"},
}


async def test_each_secret_is_shown_once_and_never_again(
    serve: Serve, ca_dir: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """OPS-10, OPS-07: every kind created by an RA officer answers 201 with its secret; the
    listing, the logs and the audit rows never carry it; each creation and the revocation is
    one audit event naming user:<officer>."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    token = await make_token(ca, "ra-officer", name="olga")
    secrets: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for kind, body in CREATIONS.items():
            before = await last_seq(ca)
            resp = await client.post(f"/api/v1/credentials/{kind}", json=body, headers=bearer(token))
            assert resp.status == 201, await resp.text()
            made = await resp.json()
            assert made["credential"]["type"] == kind and made["credential"]["state"] == "active"
            assert isinstance(made["secret"], str) and len(made["secret"]) >= 16
            secrets.append(made["secret"])
            rows = await audit_rows(ca, before)
            assert [(r.actor, r.action) for r in rows] == [("user:olga", "credential.created")], kind
        listing = await client.get("/api/v1/credentials", headers=bearer(token))
        assert listing.status == 200
        page = await listing.json()
    assert [item["type"] for item in page["items"]] == list(CREATIONS)
    challenge = page["items"][1]
    assert challenge["name"] is None and challenge["identities"] == ["cn:printer-7", "dns:printer-7.example.com"]
    text = json.dumps(page) + caplog.text + json.dumps([tuple(r) for r in await audit_rows(ca)], default=str)
    for secret in secrets:
        assert secret not in text

    # The SCEP challenge really is the one a device presents (consumed once).
    stored = await ca.credentials.consume_challenge("scep", secrets[1])
    assert stored is not None and stored.profile == "device"

    eab_id = page["items"][0]["id"]
    before = await last_seq(ca)
    revoked = await client.post(f"/api/v1/credentials/{eab_id}/revoke", headers=bearer(token))
    assert revoked.status == 200 and (await revoked.json())["state"] == "revoked"
    assert [(r.actor, r.action) for r in await audit_rows(ca, before)] == [("user:olga", "credential.revoked")]
    again = await client.post(f"/api/v1/credentials/{eab_id}/revoke", headers=bearer(token))
    await problem(again, 409, "conflict")
    await problem(await client.post("/api/v1/credentials/999999/revoke", headers=bearer(token)), 404, "not-found")

    only_est = await client.get("/api/v1/credentials?type=est-user", headers=bearer(token))
    assert [i["name"] for i in (await only_est.json())["items"]] == ["router-1"]


async def test_chosen_secrets_are_not_echoed_and_paging_works(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """OPS-10: an EST password or CMP secret the request chose is not sent back; the EST
    password works for the EST check; lists page by `limit` and `next`."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    token = await make_token(ca, "administrator")
    resp = await client.post(
        "/api/v1/credentials/est-user", json={"username": "u1", "password": "correct horse"}, headers=bearer(token)
    )
    assert resp.status == 201 and (await resp.json())["secret"] is None
    assert await ca.credentials.verify_password("est", "u1", "correct horse") is not None
    resp = await client.post(
        "/api/v1/credentials/cmp-secret", json={"reference": "r1", "secret": "s3cret-value"}, headers=bearer(token)
    )
    made = await resp.json()
    assert (
        resp.status == 201 and made["secret"] is None and made["credential"]["profile"] == "tls-server"
    )  # the server's default
    for _ in range(3):
        assert (await client.post("/api/v1/credentials/acme-eab", json={}, headers=bearer(token))).status == 201
    seen: list[int] = []
    url = "/api/v1/credentials?limit=2"
    while True:
        body = await (await client.get(url, headers=bearer(token))).json()
        seen += [item["id"] for item in body["items"]]
        if body["next"] is None:
            break
        url = f"/api/v1/credentials?limit=2&cursor={body['next']}"
    assert len(seen) == 5 and seen == sorted(set(seen))


async def test_the_commands_refusals_are_problems_and_nothing_is_stored(
    serve: Serve, ca_dir: Path, sqlite_url: str
) -> None:
    """OPS-12: a profile SCEP does not serve, an unknown profile, a bad ttl, a taken EST name,
    a short CMP secret, an unknown member: 400 problems in the commands' words, nothing stored;
    a requester may not create or list credentials (403)."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    token = await make_token(ca, "ra-officer")
    cases = [
        ("scep-challenge", {"profile": "code-signing"}, "malformed", "does not allow SCEP"),
        ("scep-challenge", {"profile": "nope"}, "malformed", "no profile named 'nope'"),
        ("scep-challenge", {"profile": "device", "ttl": "90d"}, "malformed", "1m to 30d"),
        ("scep-challenge", {"profile": "device", "ttl": "soon"}, "invalid-body", "body.ttl"),
        ("scep-challenge", {"profile": "device", "cn": "a\u0007b"}, "malformed", "body.cn: a common name"),
        ("acme-eab", {"profile": "nope"}, "malformed", "no profile named 'nope'"),
        ("cmp-secret", {"reference": "x", "secret": "short"}, "invalid-body", "secret"),
        ("est-user", {"username": "a:b"}, "malformed", "without ':'"),
        ("est-user", {"username": "a", "role": "x"}, "invalid-body", "role"),
    ]
    before = await last_seq(ca)
    for kind, body, code, words in cases:
        resp = await client.post(f"/api/v1/credentials/{kind}", json=body, headers=bearer(token))
        document = await problem(resp, 400, code)
        assert words in document["detail"], (kind, document)
    assert await last_seq(ca) == before
    listing = await (await client.get("/api/v1/credentials", headers=bearer(token))).json()
    assert listing["items"] == []
    requester = await make_token(ca, "requester", teams=["web"])
    await problem(await client.get("/api/v1/credentials", headers=bearer(requester)), 403, "forbidden")
    resp = await client.post("/api/v1/credentials/acme-eab", json={}, headers=bearer(requester))
    await problem(resp, 403, "forbidden")
