"""The approval queue through the served app: a request made through the API on a manual
profile waits under its team; another team does not see or decide it (OPS-02); four eyes
refuses the requester's own approval and audits the attempt (OPS-03); reject needs a reason;
a decided request is a conflict; a profile limited to teams takes no other team's request.
On SQLite and PostgreSQL. And a SCEP request held by its profile, approved through the API,
is issued at the client's next CertPoll."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from tests import scep_client
from tests.helpers import make_csr
from tests.integration.manage.conftest import Client, Serve, manage_config
from tests.integration.manage.manage_support import add_profile, audit_rows, last_seq, problem
from tests.integration.scep_support import HELD, prepare_scep_ca
from tests.operator_tokens import bearer, make_token


def order(name: str, profile: str = "held", **extra: Any) -> dict[str, Any]:
    csr, _ = make_csr([name])
    return {"profile": profile, "csr": csr.public_bytes(Encoding.PEM).decode(), **extra}


async def pending_ids(client: Client, auth: dict[str, str]) -> list[int]:
    resp = await client.get("/api/v1/requests", params={"status": "pending"}, headers=auth)
    assert resp.status == 200, await resp.text()
    return [item["id"] for item in (await resp.json())["items"]]


async def test_queue_teams_four_eyes_and_decisions(serve: Serve, ca_dir: Path, db_url: str) -> None:
    """OPS-02, OPS-03 on both stores."""
    add_profile(ca_dir, "held", approval="manual", four_eyes=True, teams=["web", "ops"])
    client, ca = await serve(manage_config(ca_dir, db_url))
    alice = bearer(await make_token(ca, "ra-officer", name="alice", teams=["web"]))
    bob = bearer(await make_token(ca, "ra-officer", name="bob"))  # every team
    carol = bearer(await make_token(ca, "requester", name="carol", teams=["web"]))
    dave = bearer(await make_token(ca, "ra-officer", name="dave", teams=["db"]))

    resp = await client.post("/api/v1/certificates", json=order("held.example.com"), headers=alice)
    assert resp.status == 202, await resp.text()
    request_id = (await resp.json())["request_id"]
    assert int(resp.headers["Retry-After"]) > 0
    assert await pending_ids(client, bob) == [request_id]
    assert await pending_ids(client, carol) == [request_id]  # her team's
    assert await pending_ids(client, dave) == []
    shown = await client.get(f"/api/v1/requests/{request_id}", headers=carol)
    assert shown.status == 202
    record = await shown.json()
    assert (record["status"], record["team"], record["requester"]) == ("pending", "web", "user:alice")

    before = await last_seq(ca)
    absent = await problem(await client.get("/api/v1/requests/987654", headers=dave), 404, "not-found")
    for method, path, body in [
        ("GET", f"/api/v1/requests/{request_id}", None),
        ("POST", f"/api/v1/requests/{request_id}/approve", None),
        ("POST", f"/api/v1/requests/{request_id}/reject", {"reason": "not yours"}),
    ]:
        assert await problem(await client.request(method, path, json=body, headers=dave), 404, "not-found") == absent
    assert await audit_rows(ca, before) == []

    body = await problem(await client.post(f"/api/v1/requests/{request_id}/approve", headers=alice), 403, "four-eyes")
    assert "someone else" in body["detail"]
    (refusal,) = await audit_rows(ca, before)
    assert (refusal.action, refusal.actor, refusal.target) == (
        "request.approval_refused",
        "user:alice",
        f"request/{request_id}",
    )
    assert await pending_ids(client, bob) == [request_id]

    resp = await client.post(f"/api/v1/requests/{request_id}/approve", headers=bob)
    assert resp.status == 200, await resp.text()
    approved = await resp.json()
    assert approved["status"] == "approved" and approved["decided_by"] == "user:bob"
    polled = await client.get(f"/api/v1/requests/{request_id}", headers=carol)
    assert polled.status == 200 and (await polled.json())["serial"] == approved["serial"]
    await problem(await client.post(f"/api/v1/requests/{request_id}/approve", headers=bob), 409, "conflict")
    decided = [row for row in await audit_rows(ca, before) if row.action == "request.approved"]
    assert [row.actor for row in decided] == ["user:bob"]

    resp = await client.post("/api/v1/certificates", json=order("other.example.com"), headers=carol)
    second = (await resp.json())["request_id"]
    body = await problem(
        await client.post(f"/api/v1/requests/{second}/reject", json={}, headers=bob), 400, "invalid-body"
    )
    assert "reason" in body["detail"]
    resp = await client.post(f"/api/v1/requests/{second}/reject", json={"reason": "wrong name"}, headers=bob)
    assert resp.status == 200 and (await resp.json())["decision_note"] == "wrong name"
    rejected = await client.get(f"/api/v1/requests/{second}", headers=carol)
    assert rejected.status == 200 and (await rejected.json())["status"] == "rejected"

    outsider = bearer(await make_token(ca, "requester", teams=["db"]))
    await problem(
        await client.post("/api/v1/certificates", json=order("x.example.com"), headers=outsider), 403, "policy"
    )
    body = await problem(
        await client.post("/api/v1/certificates", json=order("y.example.com", team="ops"), headers=carol),
        403,
        "forbidden",
    )
    assert "ops" in body["detail"]
    assert (await ca.audit.verify()).ok


async def test_scep_request_approved_through_the_api(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """SCEP-14 with the API as approver: PENDING, the request in the queue (no team: only a
    principal of every team sees it), approved by POST, then SUCCESS at the next CertPoll."""
    prepare_scep_ca(ca_dir)
    environ = {"TETRA_SERVER__PROTOCOLS": '["scep"]', "TETRA_MANAGE__ALSO_ON": '["http"]'}
    client, ca = await serve(manage_config(ca_dir, sqlite_url, **environ), "http")
    officer = bearer(await make_token(ca, "ra-officer"))
    web = bearer(await make_token(ca, "ra-officer", teams=["web"]))

    reply = await client.get("/scep/pkiclient.exe", params={"operation": "GetCACert"})
    ra = next(c for c in scep_client.certs_only(await reply.read()) if not scep_client.is_ca(c))
    requester = scep_client.Requester.fresh("held.example.com")
    message = scep_client.pkcs_req(requester, ra, "held.example.com", ["held.example.com"], challenge=HELD)
    assert (await _exchange(client, message, requester, ra)).status == scep_client.PENDING

    (request_id,) = await pending_ids(client, officer)
    assert await pending_ids(client, web) == []
    resp = await client.post(f"/api/v1/requests/{request_id}/approve", headers=officer)
    assert resp.status == 200, await resp.text()

    issuer = ca.issuers["issuing-ca"].certificate.subject
    poll = scep_client.cert_poll(requester, ra, issuer, requester.certificate.subject)
    got = await _exchange(client, poll, requester, ra)
    assert got.status == scep_client.SUCCESS, got.fail_info_text
    assert got.certificate.public_key() == requester.key.public_key()
    assert format(got.certificate.serial_number, "x") == (await resp.json())["serial"]


async def _exchange(client: Client, message: Any, requester: Any, ra: Any) -> Any:
    resp = await client.post(
        "/scep/held/pkiclient.exe",
        params={"operation": "PKIOperation"},
        data=message.der,
        headers={"Content-Type": "application/x-pki-message"},
    )
    assert resp.status == 200, await resp.text()
    return scep_client.parse_cert_rep(await resp.read(), message, requester.key, ra)
