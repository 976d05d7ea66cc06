"""Notifications through the management API, on SQLite and PostgreSQL, against a real SMTP server on loopback: a pass
run now plans and delivers a certificate's expiry notice; the outbox status and rows show it;
a test message reaches the address; each operation is one audit event naming the user
(OPS-07); an unknown webhook is a 400 problem; the outbox is for those who see every team."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import audit_rows, last_seq, problem
from tests.inventory_certs import foreign_der
from tests.notify_support import ADMIN, SmtpSink, import_one
from tests.operator_tokens import bearer, make_token


async def test_run_status_outbox_and_test_message(serve: Serve, ca_dir: Path, db_url: str) -> None:
    with SmtpSink() as sink:
        config_file = ca_dir / "tetra.toml"
        config_file.write_text(
            config_file.read_text()
            # Not enabled: the server's own notification jobs stay off, so the pass below is the only one.
            + f'\n[notifications]\nadmin_email = ["{ADMIN}"]\n'
            + f'[notifications.smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n'
        )
        client, ca = await serve(manage_config(ca_dir, db_url))
        admin = await make_token(ca, "administrator", name="nina")
        auditor = await make_token(ca, "auditor")
        now = dt.datetime.now(dt.UTC)
        der = foreign_der(
            "soon.example.org", not_before=now - dt.timedelta(days=80), not_after=now + dt.timedelta(days=10)
        )
        await import_one(ca, der, owner="owner@example.com", team=None)

        before = await last_seq(ca)
        resp = await client.post("/api/v1/notifications/run", headers=bearer(admin))
        assert resp.status == 200, await resp.text()
        result = await resp.json()
        assert result["due"] >= 1 and result["delivered"] >= 1 and result["failed"] == 0
        assert sorted(r for r, _ in sink.received()) == sorted(["owner@example.com", ADMIN])
        assert ("user:nina", "notification.pass_run") in [(r.actor, r.action) for r in await audit_rows(ca, before)]

        status = await (await client.get("/api/v1/notifications/status", headers=bearer(auditor))).json()
        assert status["delivered"] == result["delivered"] and status["given_up"] == 0
        rows = await (await client.get("/api/v1/notifications/outbox?state=delivered", headers=bearer(auditor))).json()
        assert {m["recipient"] for m in rows["items"]} >= {"owner@example.com"}
        assert all(m["state"] == "delivered" and m["delivered_at"] for m in rows["items"])
        queued = await (await client.get("/api/v1/notifications/outbox?state=queued", headers=bearer(auditor))).json()
        assert queued["items"] == []

        before = await last_seq(ca)
        resp = await client.post("/api/v1/notifications/test", json={"email": ADMIN}, headers=bearer(admin))
        assert await resp.json() == {"delivered": True, "error": None}
        assert sink.received()[-1] == (ADMIN, "[Tetra] test notification")
        assert [(r.actor, r.action) for r in await audit_rows(ca, before)] == [("user:nina", "notification.test_sent")]

        resp = await client.post("/api/v1/notifications/test", json={"webhook": "nowhere"}, headers=bearer(admin))
        assert "no such webhook" in (await problem(resp, 400, "malformed"))["detail"]
        await problem(await client.post("/api/v1/notifications/run", headers=bearer(auditor)), 403, "forbidden")
        officer = await make_token(ca, "ra-officer", teams=["web"])
        await problem(await client.get("/api/v1/notifications/outbox", headers=bearer(officer)), 403, "forbidden")
