"""The audit log through the management API, on SQLite and PostgreSQL: events filtered by actor, action, target and
time, paged in chain order; GET /audit/verify reports the chain, and an edited row shows up in
it; only principals holding audit.read may read (403 for a requester)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from ca.store.tables import audit_log
from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import last_seq, problem
from tests.operator_tokens import bearer, make_token


async def test_events_filtered_and_paged_and_the_chain_verified(serve: Serve, ca_dir: Path, db_url: str) -> None:
    """OPS-07: the events an officer's changes wrote are found by actor and action, page by
    page with no repeat; verify says ok, then names the row edited behind the log's back."""
    client, ca = await serve(manage_config(ca_dir, db_url))
    officer = await make_token(ca, "ra-officer", name="oscar")
    auditor = await make_token(ca, "auditor", name="alma")
    start = await last_seq(ca)
    for _ in range(3):
        resp = await client.post("/api/v1/credentials/acme-eab", json={}, headers=bearer(officer))
        assert resp.status == 201

    url = "/api/v1/audit?actor=user:oscar&action=credential.&limit=2"
    seqs: list[int] = []
    while url:
        body = await (await client.get(url, headers=bearer(auditor))).json()
        assert all(e["actor"] == "user:oscar" and e["action"] == "credential.created" for e in body["items"])
        seqs += [e["seq"] for e in body["items"]]
        url = f"/api/v1/audit?actor=user:oscar&action=credential.&limit=2&cursor={body['next']}" if body["next"] else ""
    assert len(seqs) == 3 and seqs == sorted(seqs) and seqs[0] > start

    late = await (await client.get("/api/v1/audit?since=2999-01-01T00:00:00", headers=bearer(auditor))).json()
    assert late["items"] == []
    users = await (await client.get("/api/v1/audit?target=user/", headers=bearer(auditor))).json()
    assert users["items"] and all(e["target"].startswith("user/") for e in users["items"])
    await problem(await client.get("/api/v1/audit?since=yesterday", headers=bearer(auditor)), 400, "invalid-query")

    report = await (await client.get("/api/v1/audit/verify", headers=bearer(auditor))).json()
    assert report["ok"] is True and report["events"] >= seqs[-1] and report["problems"] == []
    await ca.db.write(
        lambda tx: tx.conn.execute(update(audit_log).where(audit_log.c.seq == seqs[1]).values(actor="user:mallory"))
    )
    report = await (await client.get("/api/v1/audit/verify", headers=bearer(auditor))).json()
    assert report["ok"] is False and any(f"event {seqs[1]}" in p for p in report["problems"])

    requester = await make_token(ca, "requester", teams=["web"])
    await problem(await client.get("/api/v1/audit", headers=bearer(requester)), 403, "forbidden")
