"""Profiles through the management API: read by anyone holding profiles.read; written by
administrators only, as TOML or a JSON object, checked by the loader exactly as a file is
(a refusal is a 400 problem and the directory is unchanged), written atomically and reloaded in
this process at once, audited with the acting user (OPS-07)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import audit_rows, last_seq, problem
from tests.operator_tokens import bearer, make_token


async def test_read_write_and_reload(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    config = manage_config(ca_dir, sqlite_url)
    client, ca = await serve(config)
    admin = await make_token(ca, "administrator", name="adm")
    requester = await make_token(ca, "requester", teams=["web"])

    listing = await (await client.get("/api/v1/profiles", headers=bearer(requester))).json()
    assert "device" in {p["name"] for p in listing["items"]}
    shown = await (await client.get("/api/v1/profiles/device", headers=bearer(requester))).json()
    text = (config.profiles_dir / "device.toml").read_text()
    assert shown["toml"] == text and shown["profile"]["approval"] == "auto"
    await problem(await client.get("/api/v1/profiles/nope", headers=bearer(requester)), 404, "not-found")

    # A requester may not write; an administrator replaces device with four eyes and manual approval.
    changed = text.replace('approval = "auto"', 'approval = "manual"\nfour_eyes = true')
    await problem(
        await client.put("/api/v1/profiles/device", json={"toml": changed}, headers=bearer(requester)), 403, "forbidden"
    )
    before = await last_seq(ca)
    resp = await client.put("/api/v1/profiles/device", json={"toml": changed}, headers=bearer(admin))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["four_eyes"] is True
    assert ca.profiles["device"].approval == "manual" and ca.profiles["device"].four_eyes
    assert (config.profiles_dir / "device.toml").read_text() == changed
    assert [(r.actor, r.action, r.target) for r in await audit_rows(ca, before)] == [
        ("user:adm", "profile.written", "profile/device")
    ]

    # A JSON object becomes a new TOML file, loaded like any other.
    table = tomllib.loads(text)
    table["description"] = "Lab devices"
    resp = await client.put("/api/v1/profiles/lab-device", json={"profile": table}, headers=bearer(admin))
    assert resp.status == 201, await resp.text()
    assert tomllib.loads((config.profiles_dir / "lab-device.toml").read_text())["description"] == "Lab devices"
    assert ca.profiles["lab-device"].description == "Lab devices"

    # Refusals: the loader's own words, nothing written, nothing audited.
    files = sorted(p.name for p in config.profiles_dir.iterdir())
    before = await last_seq(ca)
    cases = [
        ("device", {"toml": "approval = "}, "not valid TOML"),
        ("device", {"toml": text.replace('approval = "auto"', 'approval = "sometimes"')}, "approval"),
        ("device", {"profile": {**table, "issuer": "nobody-ca"}}, "unknown issuer"),
        ("../evil", {"toml": text}, ""),
        ("Bad Name", {"toml": text}, "profile name"),
    ]
    for name, body, words in cases:
        resp = await client.put(f"/api/v1/profiles/{name}", json=body, headers=bearer(admin))
        assert resp.status in (400, 404), (name, await resp.text())
        if words:
            assert words in (await problem(resp, 400, "malformed"))["detail"], name
    await problem(
        await client.put("/api/v1/profiles/x", json={"toml": text, "profile": {}}, headers=bearer(admin)),
        400,
        "invalid-body",
    )
    assert sorted(p.name for p in config.profiles_dir.iterdir()) == files
    assert (config.profiles_dir / "device.toml").read_text() == changed
    assert await last_seq(ca) == before


async def test_a_write_the_audit_log_refuses_leaves_the_file_as_it_was(
    serve: Serve, ca_dir: Path, sqlite_url: str
) -> None:
    """OPS-07: the profile file is replaced inside the transaction that appends its audit event;
    when the log refuses the row (a trigger standing in for a full disk), the API answers an
    error, the old file is back on disk byte for byte, and the loaded profile is unchanged."""
    from sqlalchemy import text as sql

    config = manage_config(ca_dir, sqlite_url)
    client, ca = await serve(config)
    admin = await make_token(ca, "administrator", name="adm")
    path = config.profiles_dir / "device.toml"
    original = path.read_bytes()
    changed = original.decode().replace('approval = "auto"', 'approval = "manual"')

    def refuse(conn: object) -> None:
        conn.execute(  # type: ignore[attr-defined]
            sql(
                "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        )

    await ca.db.write(lambda tx: refuse(tx.conn))
    before = await last_seq(ca)
    resp = await client.put("/api/v1/profiles/device", json={"toml": changed}, headers=bearer(admin))
    assert resp.status >= 500 and resp.content_type == "application/problem+json", await resp.text()
    assert path.read_bytes() == original
    assert ca.profiles["device"].approval == "auto"
    assert await last_seq(ca) == before
    new_file = config.profiles_dir / "lab-new.toml"
    resp = await client.put("/api/v1/profiles/lab-new", json={"toml": changed}, headers=bearer(admin))
    assert resp.status >= 500 and not new_file.exists()
