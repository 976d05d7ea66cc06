"""Discovery through the management API, on SQLite and PostgreSQL: a scan started by a
team-bound officer belongs to its team, runs in the background and is followed by GET; another
team's officer gets 404 for it, its findings, and sees none of it in lists (OPS-02); a target
outside [discovery] allow is refused before anything is sent or recorded (CLM-05); findings
filter by severity; file scans are for those who see every team."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from ca.inventory.scans import FindingNote, LocationResult
from ca.service import CertificateAuthority
from server.manage.actions import discovery
from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import audit_rows, last_seq, problem
from tests.operator_tokens import bearer, make_token


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): a probe there fails at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def finished(ca: CertificateAuthority) -> None:
    await asyncio.gather(*discovery.running(ca))


async def test_scans_belong_to_their_team(serve: Serve, ca_dir: Path, db_url: str) -> None:
    config = manage_config(
        ca_dir, db_url, TETRA_DISCOVERY__ALLOW='["127.0.0.0/8"]', TETRA_DISCOVERY__TIMEOUT_SECONDS="2"
    )
    client, ca = await serve(config)
    web = await make_token(ca, "ra-officer", name="wanda", teams=["web"])
    db = await make_token(ca, "ra-officer", name="dora", teams=["db"])
    admin = await make_token(ca, "administrator")

    before = await last_seq(ca)
    port = closed_port()
    resp = await client.post(
        "/api/v1/discovery/scans", json={"kind": "network", "targets": [f"127.0.0.1:{port}"]}, headers=bearer(web)
    )
    assert resp.status == 202, await resp.text()
    scan_id = (await resp.json())["scan"]
    assert resp.headers["Location"] == f"/api/v1/discovery/scans/{scan_id}"
    await finished(ca)
    scan = await (await client.get(f"/api/v1/discovery/scans/{scan_id}", headers=bearer(web))).json()
    assert scan["team"] == "web" and scan["status"] == "done" and scan["requested_by"] == "user:wanda"
    assert scan["summary"]["locations"] == 1 and scan["summary"]["errors"] == 1
    actions = [(r.actor, r.action) for r in await audit_rows(ca, before)]
    assert actions == [("user:wanda", "discovery.started"), ("user:wanda", "discovery.finished")]

    # A finding at that location, recorded by the store as a scan would, for the filters.
    note = FindingNote("weak-key", "critical", "RSA 1024")
    await ca.scans.record(scan_id, [LocationResult("endpoint", f"127.0.0.1:{port}", (), (note,))], at=ca.clock.now())
    found = await client.get(f"/api/v1/discovery/scans/{scan_id}/findings?severity=critical", headers=bearer(web))
    assert [(f["code"], f["severity"]) for f in (await found.json())["items"]] == [("weak-key", "critical")]
    none = await client.get(f"/api/v1/discovery/scans/{scan_id}/findings?severity=warning", headers=bearer(web))
    assert (await none.json())["items"] == []
    everything = await (await client.get(f"/api/v1/discovery/scans/{scan_id}/findings", headers=bearer(web))).json()
    assert {f["code"] for f in everything["items"]} == {"refused", "weak-key"}  # the probe's own, and ours
    now = await (await client.get("/api/v1/discovery/findings?severity=critical", headers=bearer(web))).json()
    assert [(f["location"], f["code"]) for f in now["items"]] == [(f"127.0.0.1:{port}", "weak-key")]

    # The other team: as if it did not exist.
    await problem(await client.get(f"/api/v1/discovery/scans/{scan_id}", headers=bearer(db)), 404, "not-found")
    resp = await client.get(f"/api/v1/discovery/scans/{scan_id}/findings", headers=bearer(db))
    await problem(resp, 404, "not-found")
    assert (await (await client.get("/api/v1/discovery/scans", headers=bearer(db))).json())["items"] == []
    assert (await (await client.get("/api/v1/discovery/findings", headers=bearer(db))).json())["items"] == []
    everyone = await (await client.get("/api/v1/discovery/scans", headers=bearer(admin))).json()
    assert [s["id"] for s in everyone["items"]] == [scan_id]

    # Refused before anything is sent or recorded.
    before = await last_seq(ca)
    resp = await client.post(
        "/api/v1/discovery/scans", json={"kind": "network", "targets": ["192.0.2.1"]}, headers=bearer(web)
    )
    assert "allow" in (await problem(resp, 400, "malformed"))["detail"]
    resp = await client.post(
        "/api/v1/discovery/scans", json={"kind": "network", "targets": ["127.0.0.1"], "team": "db"}, headers=bearer(web)
    )
    await problem(resp, 403, "forbidden")
    resp = await client.post(
        "/api/v1/discovery/scans", json={"kind": "files", "paths": [str(ca_dir)]}, headers=bearer(web)
    )
    await problem(resp, 403, "forbidden")
    assert await last_seq(ca) == before
    assert len((await (await client.get("/api/v1/discovery/scans", headers=bearer(admin))).json())["items"]) == 1


async def test_file_scan_by_an_administrator(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """A file scan of the CA's own directory finds its certificates; a relative path and a
    requester (no discovery permission) are refused."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    admin = await make_token(ca, "administrator")
    resp = await client.post(
        "/api/v1/discovery/scans", json={"kind": "files", "paths": [str(ca_dir)]}, headers=bearer(admin)
    )
    assert resp.status == 202, await resp.text()
    await finished(ca)
    scan = await (
        await client.get(f"/api/v1/discovery/scans/{(await resp.json())['scan']}", headers=bearer(admin))
    ).json()
    assert scan["status"] == "done" and scan["summary"]["certificates"] >= 2 and scan["team"] is None
    resp = await client.post("/api/v1/discovery/scans", json={"kind": "files", "paths": ["etc"]}, headers=bearer(admin))
    await problem(resp, 400, "malformed")
    requester = await make_token(ca, "requester", teams=["web"])
    await problem(await client.get("/api/v1/discovery/scans", headers=bearer(requester)), 403, "forbidden")


async def test_a_scan_running_at_shutdown_is_recorded_failed(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """A scan still probing when the server stops is cancelled before the CA closes and its
    record says failed (not running for ever)."""
    silent: list[asyncio.StreamWriter] = []

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        silent.append(writer)  # accepts, reads nothing, answers nothing: the TLS probe waits

    listener = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        config = manage_config(ca_dir, sqlite_url, TETRA_DISCOVERY__ALLOW='["127.0.0.0/8"]')
        client, ca = await serve(config)
        admin = await make_token(ca, "administrator")
        body = {"kind": "network", "targets": [f"127.0.0.1:{port}"]}
        resp = await client.post("/api/v1/discovery/scans", json=body, headers=bearer(admin))
        scan_id = (await resp.json())["scan"]
        assert len(discovery.running(ca)) == 1
        await discovery.stop_scans(ca)
        record = await ca.scans.get(scan_id)
        assert record is not None and record.status == "failed" and not discovery.running(ca)
    finally:
        for writer in silent:
            writer.close()
        listener.close()
        await listener.wait_closed()
