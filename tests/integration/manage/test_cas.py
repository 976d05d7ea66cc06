"""The CA hierarchy through the management API: the generations `tetra ca list` shows, one in
detail with its certificate, and activation (CAL-06) refused as the command refuses it, as
problem documents; only administrators may activate (403 for an RA officer)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.authorities.model import Authority, Kind
from ca.authorities.store import AuthorityStore
from ca.hierarchy import CAProfile, create_intermediate, create_root
from ca.keys import generate_private_key
from ca.store.db import Database
from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import audit_rows, last_seq, problem
from tests.integration.rollover_support import parent_key, tetra_ok
from tests.operator_tokens import bearer, make_token


async def test_list_show_and_activation(
    serve: Serve, ca_dir: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CAL-06 through the API: refusals as the command words them, nothing changed; a
    generation staged by `tetra ca rollover` is activated by an administrator, audited as
    ca.activation_scheduled with the user (OPS-07)."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    officer = await make_token(ca, "ra-officer")
    admin = await make_token(ca, "administrator")
    listing = await (await client.get("/api/v1/cas", headers=bearer(officer))).json()
    by_name = {line["name"]: line for line in listing["items"]}
    issuing = next(line for line in listing["items"] if line["kind"] == "issuing" and line["default"])
    assert issuing["state"] == "active" and any(line["kind"] == "root" for line in listing["items"])

    detail = await (await client.get(f"/api/v1/cas/{issuing['family']}", headers=bearer(officer))).json()
    assert detail["ca"]["name"] == issuing["name"] and detail["ca"]["key"] == by_name[issuing["name"]]["key"]
    cert = x509.load_pem_x509_certificate(detail["certificate"].encode())
    assert f"{cert.serial_number:x}" == detail["serial"]
    await problem(await client.get("/api/v1/cas/nope", headers=bearer(officer)), 404, "not-found")

    before = await last_seq(ca)
    resp = await client.post(f"/api/v1/cas/{issuing['name']}/activate", json={}, headers=bearer(admin))
    body = await problem(resp, 400, "malformed")
    assert "already the active generation" in body["detail"]
    resp = await client.post("/api/v1/cas/nope/activate", json={}, headers=bearer(admin))
    assert "no CA generation named 'nope'" in (await problem(resp, 400, "malformed"))["detail"]
    resp = await client.post("/api/v1/cas/nope/activate", json={"at": "soon"}, headers=bearer(admin))
    await problem(resp, 400, "invalid-body")
    resp = await client.post(f"/api/v1/cas/{issuing['name']}/activate", json={}, headers=bearer(officer))
    await problem(resp, 403, "forbidden")
    assert await last_seq(ca) == before

    monkeypatch.setenv("TETRA_DATABASE__URL", sqlite_url)
    await tetra_ok(ca_dir, "ca", "rollover", "issuing-ca", "--same-key", *parent_key(ca_dir))
    before = await last_seq(ca)
    resp = await client.post("/api/v1/cas/issuing-ca.2/activate", json={}, headers=bearer(admin))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["name"] == "issuing-ca.2"
    rows = await audit_rows(ca, before)
    assert [(r.actor, r.action, r.target) for r in rows] == [
        ("user:" + (await ca.operators.tokens.authenticate(admin)).user, "ca.activation_scheduled", "ca/issuing-ca.2")
    ]


async def register_external(db_url: str) -> x509.Certificate:
    """An issuing CA an outside root signed, as `tetra ca import` registers one (no parent here)."""
    outside_key = generate_private_key("ec-p256")
    outside = create_root(CAProfile("Somebody Else's Root", validity_days=7300), outside_key)
    key = generate_private_key("ec-p256")
    cert = create_intermediate(CAProfile("Imported CA", path_length=0), key.public_key(), outside, outside_key)
    db = Database(db_url)
    now = dt.datetime.now(dt.UTC)
    try:
        der = cert.public_bytes(Encoding.DER)
        await AuthorityStore(db).add(Authority("ext-ca", "ext-ca", 1, Kind.ISSUING, None, der, None, now, now), None)
    finally:
        await db.close()
    return cert


async def test_revoking_a_generation_only_where_no_offline_key_is_needed(
    serve: Serve, ca_dir: Path, sqlite_url: str
) -> None:
    """CAL-02 through the API: a generation an outside CA signed is revoked in the registry,
    audited as ca.revoked with the user (OPS-07), and the answer says what its issuer must
    revoke; this CA's own issuing CA (its root's key is offline) is refused, as is the active
    generation without force, and a bad reason; nothing changes on a refusal."""
    cert = await register_external(sqlite_url)
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    admin = await make_token(ca, "administrator", name="ida")
    before = await last_seq(ca)
    refusals = [
        ("issuing-ca", {"reason": "superseded"}, 400, "malformed", "activate one first, or force it"),
        ("issuing-ca", {"reason": "superseded", "force": True}, 409, "conflict", "--parent-key"),
        ("root", {"reason": "superseded"}, 400, "malformed", "is a root"),
        ("ext-ca", {"reason": "sometimes"}, 400, "malformed", "revocation reason"),
        ("nope", {"reason": "superseded"}, 400, "malformed", "no CA generation named 'nope'"),
    ]
    for name, body, status, code, words in refusals:
        resp = await client.post(f"/api/v1/cas/{name}/revoke", json=body, headers=bearer(admin))
        assert words in (await problem(resp, status, code))["detail"], name
    assert await last_seq(ca) == before

    resp = await client.post("/api/v1/cas/ext-ca/revoke", json={"reason": "superseded"}, headers=bearer(admin))
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["serial"] == f"{cert.serial_number:x}" and done["issuer"] == "CN=Somebody Else's Root"
    rows = await audit_rows(ca, before)
    assert [(r.actor, r.action, r.target) for r in rows] == [("user:ida", "ca.revoked", "ca/ext-ca")]
    [record] = [a for a in await AuthorityStore(ca.db).all() if a.name == "ext-ca"]
    assert record.revoked_at is not None and record.revocation_reason == "superseded"
