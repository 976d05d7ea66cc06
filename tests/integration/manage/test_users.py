"""Users and API tokens through the management API, on SQLite and PostgreSQL: administrators
add, disable and enable users and see anyone's tokens; every user makes, lists and revokes its
own tokens, and nobody else's (404, OPS-02's rule); a token's secret is in the 201 answer only,
never in a listing, a log line or an audit row (OPS-10); each change is one audit event naming
the acting user (OPS-07); GET /me says who is calling."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ca.operators.roles import ROLE_PERMISSIONS, Role
from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import audit_rows, last_seq, problem
from tests.operator_tokens import bearer, make_token


async def test_administrator_manages_users(serve: Serve, ca_dir: Path, db_url: str) -> None:
    """OPS-07: add, disable, enable: one audit event each, actor user:<admin>; a disabled
    user's token is refused at once (401); an admin cannot disable itself; an auditor may read
    users but not change them (403); a bad user is a 400 problem and nothing is stored."""
    client, ca = await serve(manage_config(ca_dir, db_url))
    admin = await make_token(ca, "administrator", name="ada")
    auditor = await make_token(ca, "auditor", name="aud")
    before = await last_seq(ca)
    resp = await client.post(
        "/api/v1/users", json={"name": "wendy", "role": "requester", "teams": ["web"]}, headers=bearer(admin)
    )
    assert resp.status == 201, await resp.text()
    assert (await resp.json())["teams"] == ["web"]
    rows = await audit_rows(ca, before)
    assert [(r.actor, r.action, r.target) for r in rows] == [("user:ada", "user.added", "user/wendy")]

    wendy = (await ca.operators.tokens.create("wendy", label="t", scopes=None, expires_at=None, actor="test"))[1]
    assert (await client.get("/api/v1/me", headers=bearer(wendy))).status == 200
    before = await last_seq(ca)
    disabled = await client.post("/api/v1/users/wendy/disable", headers=bearer(admin))
    assert disabled.status == 200 and (await disabled.json())["disabled"] is True
    await problem(await client.get("/api/v1/me", headers=bearer(wendy)), 401, "unauthenticated")
    enabled = await client.post("/api/v1/users/wendy/enable", headers=bearer(admin))
    assert enabled.status == 200 and (await enabled.json())["disabled"] is False
    assert (await client.get("/api/v1/me", headers=bearer(wendy))).status == 200
    assert [(r.actor, r.action) for r in await audit_rows(ca, before)] == [
        ("user:ada", "user.disabled"),
        ("user:ada", "user.enabled"),
    ]

    await problem(await client.post("/api/v1/users/ada/disable", headers=bearer(admin)), 409, "conflict")
    await problem(await client.post("/api/v1/users/nobody/disable", headers=bearer(admin)), 404, "not-found")
    await problem(await client.get("/api/v1/users/nobody", headers=bearer(admin)), 404, "not-found")
    listed = await (await client.get("/api/v1/users", headers=bearer(auditor))).json()
    assert {"ada", "aud", "wendy"} <= {u["name"] for u in listed["items"]}  # and tetra init's admin
    await problem(await client.post("/api/v1/users/wendy/disable", headers=bearer(auditor)), 403, "forbidden")

    before = await last_seq(ca)
    for body in (
        {"name": "x y", "role": "auditor"},  # the schema's name pattern
        {"name": "rq", "role": "requester"},  # a requester names its teams (the store's rule)
        {"name": "wendy", "role": "auditor"},  # taken
    ):
        resp = await client.post("/api/v1/users", json=body, headers=bearer(admin))
        assert resp.status == 400, (body, await resp.text())
    assert await last_seq(ca) == before


async def test_own_tokens_and_nobody_elses(
    serve: Serve, ca_dir: Path, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """OPS-10, OPS-02: a requester creates a token (secret once), lists and revokes its own;
    another user's token is 404 to it and unchanged; an administrator revokes anyone's; a
    scoped token cannot mint a broader one; /me reports role, teams and permissions."""
    client, ca = await serve(manage_config(ca_dir, db_url))
    admin = await make_token(ca, "administrator", name="root")
    mine = await make_token(ca, "requester", name="rita", teams=["web"])
    theirs = await make_token(ca, "requester", name="rob", teams=["db"])

    me = await (await client.get("/api/v1/me", headers=bearer(mine))).json()
    assert me["user"] == "rita" and me["role"] == "requester" and me["teams"] == ["web"]
    assert set(me["permissions"]) == {p.value for p in ROLE_PERMISSIONS[Role.REQUESTER]} and not me["all_teams"]

    before = await last_seq(ca)
    with caplog.at_level(logging.DEBUG):
        resp = await client.post(
            "/api/v1/tokens", json={"label": "ci", "scopes": ["certificates.read"]}, headers=bearer(mine)
        )
        assert resp.status == 201
        made = await resp.json()
        secret = made["secret"]
        listing = await (await client.get("/api/v1/tokens", headers=bearer(mine))).json()
    assert [(r.actor, r.action) for r in await audit_rows(ca, before)] == [("user:rita", "token.created")]
    assert {t["user"] for t in listing["items"]} == {"rita"} and len(listing["items"]) == 2
    everything = json.dumps(listing) + caplog.text + json.dumps([tuple(r) for r in await audit_rows(ca)], default=str)
    assert secret not in everything and mine not in everything

    # The new token works, narrowed to its scope, and cannot mint a broader token.
    scoped = (await client.get("/api/v1/me", headers=bearer(secret))).json
    assert (await scoped())["permissions"] == ["certificates.read"]
    resp = await client.post(
        "/api/v1/tokens", json={"label": "wider", "scopes": ["certificates.request"]}, headers=bearer(secret)
    )
    await problem(resp, 403, "forbidden")
    resp = await client.post("/api/v1/tokens", json={"label": "same"}, headers=bearer(secret))
    assert (await resp.json())["token"]["scopes"] == ["certificates.read"]
    resp = await client.post("/api/v1/tokens", json={"label": "reads", "scopes": ["read"]}, headers=bearer(mine))
    held = {p.value for p in ROLE_PERMISSIONS[Role.REQUESTER] if p.reads_only}
    assert set((await resp.json())["token"]["scopes"]) == held  # `read`: the reads it holds

    robs = await (await client.get("/api/v1/users/rob/tokens", headers=bearer(admin))).json()
    rob_token = robs["items"][0]["id"]
    await problem(await client.post(f"/api/v1/tokens/{rob_token}/revoke", headers=bearer(mine)), 404, "not-found")
    assert (await client.get("/api/v1/me", headers=bearer(theirs))).status == 200
    await problem(await client.get("/api/v1/users/rob/tokens", headers=bearer(mine)), 403, "forbidden")

    own_id = made["token"]["id"]
    revoked = await client.post(f"/api/v1/tokens/{own_id}/revoke", headers=bearer(mine))
    assert revoked.status == 200 and (await revoked.json())["revoked_at"] is not None
    await problem(await client.get("/api/v1/me", headers=bearer(secret)), 401, "unauthenticated")
    before = await last_seq(ca)
    assert (await client.post(f"/api/v1/tokens/{rob_token}/revoke", headers=bearer(admin))).status == 200
    assert [(r.actor, r.action, r.target) for r in await audit_rows(ca, before)] == [
        ("user:root", "token.revoked", "user/rob")
    ]
    await problem(await client.get("/api/v1/me", headers=bearer(theirs)), 401, "unauthenticated")
