"""Delivering the outbox through a real SMTP server (aiosmtpd) and a real webhook receiver
(aiohttp), both on 127.0.0.1, on SQLite and PostgreSQL. Time is driven through ``now``: the
backoff is checked by what is due when, not by sleeping."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select

from ca.notices.outbox import OutboxStore
from ca.notices.planner import NotificationPlanner
from ca.notices.settings import TeamRoute, WebhookSettings
from ca.service import CertificateAuthority
from ca.store.tables import audit_log
from server.config import ServerConfig
from server.notify.delivery import DeliveryResult, deliver_due
from server.notify.webhook import verify_signature
from tests.cli_here import tetra_here
from tests.notify_support import SmtpSink, issue

DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)
ALICE = "alice@example.com"


async def test_refused_mail_is_retried_with_backoff_and_delivered_once(ca: CertificateAuthority) -> None:
    """CLM-03: an SMTP server answering 451 twice, then accepting: retried after 30 s, then 60 s,
    delivered exactly once; a row claimed by a process that died is sent once its claim runs out."""
    t0 = dt.datetime.now(dt.UTC)
    cert = await issue(ca, "retry.example.com", owner=ALICE)
    with SmtpSink(refuse_first=2) as sink:
        settings = sink.settings()
        outbox = OutboxStore(ca.db, max_attempts=settings.max_attempts)
        at = t0 + 61 * DAY
        await NotificationPlanner(ca, settings, outbox).plan(at)
        key = f"expiry:30d:{cert.id}:owner:email:{ALICE}"
        assert await deliver_due(outbox, settings, "p1", at) == DeliveryResult(failed=1)
        row = await outbox.get(key)
        assert row is not None and row.attempts == 1 and row.last_error is not None and "451" in row.last_error
        assert await deliver_due(outbox, settings, "p1", at + 29 * SECOND) == DeliveryResult()  # backing off
        assert await deliver_due(outbox, settings, "p1", at + 30 * SECOND) == DeliveryResult(failed=1)
        assert await deliver_due(outbox, settings, "p1", at + 89 * SECOND) == DeliveryResult()  # 60 s now
        assert await deliver_due(outbox, settings, "p1", at + 90 * SECOND) == DeliveryResult(delivered=1)
        assert await deliver_due(outbox, settings, "p1", at + DAY) == DeliveryResult()
        assert [r for r, _ in sink.received()] == [ALICE]
        assert sink.refused == 2

        # A process claims a row and dies before sending: nobody else sends it while the claim
        # holds, and it is delivered once the claim has run out.
        later = at + 16 * DAY  # 14 days left: owner and team
        await NotificationPlanner(ca, settings, outbox).plan(later)
        claimed = await outbox.claim_due("dead-process", later, 100)
        assert {m.recipient for m in claimed} >= {ALICE, "web-team@example.com"}
        assert await deliver_due(outbox, settings, "p2", later + 60 * SECOND) == DeliveryResult()
        result = await deliver_due(outbox, settings, "p2", later + 121 * SECOND)
        assert result.delivered == len(claimed)
        subjects = [s for r, s in sink.received() if r == ALICE]
        assert len(subjects) == 2 and "retry.example.com" in subjects[1]


async def test_mail_refused_for_good_is_given_up_and_reported(
    ca: CertificateAuthority, config: ServerConfig, ca_dir: Path
) -> None:
    """CLM-03: an SMTP server that always refuses: after max_attempts the row is given up, with an
    audit event notification.failed, and `tetra notify status` reports it with its error."""
    t0 = dt.datetime.now(dt.UTC)
    cert = await issue(ca, "dead.example.com", owner=ALICE)
    with SmtpSink(refuse_first=-1) as sink:
        settings = sink.settings(max_attempts=3)
        outbox = OutboxStore(ca.db, max_attempts=3)
        at = t0 + 61 * DAY
        await NotificationPlanner(ca, settings, outbox).plan(at)
        outcomes = [await deliver_due(outbox, settings, "p1", at + n * 10 * 60 * SECOND) for n in range(4)]
        assert outcomes == [DeliveryResult(failed=1), DeliveryResult(failed=1), DeliveryResult(given_up=1),
                            DeliveryResult()]  # fmt: skip
        assert sink.refused == 3 and sink.received() == []
    row = await outbox.get(f"expiry:30d:{cert.id}:owner:email:{ALICE}")
    assert row is not None and row.gave_up_at is not None and row.attempts == 3
    query = select(audit_log.c.target, audit_log.c.details).where(audit_log.c.action == "notification.failed")
    events = await ca.db.read(lambda conn: conn.execute(query).all())
    assert [e.target for e in events] == [f"notification/{row.id}"]
    assert json.loads(events[0].details)["recipient"] == ALICE
    status = tetra_here(  # server.cli.main in this process (tests/cli_here.py)
        "notify", "status", "--config", str(ca_dir / "tetra.toml"), env={"TETRA_DATABASE__URL": config.database_url}
    )
    assert status.returncode == 0, status.stderr
    assert "given up: 1" in status.stdout
    assert f"given up  #{row.id} email {ALICE}  expiry:30d  attempts 3:" in status.stdout and "451" in status.stdout


class Receiver:
    """A webhook receiver on 127.0.0.1 that verifies each request and answers from a script."""

    def __init__(self, secret: bytes, answers: list[int]) -> None:
        self.secret = secret
        self.answers = answers
        self.seen: list[tuple[str, str, bytes, bool]] = []  # delivery id, signature, body, verified

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        signature = request.headers.get("Tetra-Signature", "")
        verified = verify_signature(self.secret, signature, body)
        self.seen.append((request.headers.get("Tetra-Delivery", ""), signature, body, verified))
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status if verified else 401)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hook = Receiver(b"hook secret", [500, 200])
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield hook, f"http://127.0.0.1:{port}/hook"
    finally:
        await runner.cleanup()


async def test_webhook_signed_and_retried_with_the_same_delivery_id(
    ca: CertificateAuthority, receiver: tuple[Receiver, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """CLM-04: the receiver verifies the HMAC and timestamp; a 500 is retried with the same
    Tetra-Delivery id and then delivered; a wrong secret, a changed body or an old timestamp fail."""
    hook, url = receiver
    monkeypatch.setenv("TETRA_TEST_HOOK_SECRET", "hook secret")
    t0 = dt.datetime.now(dt.UTC)
    cert = await issue(ca, "hooked.example.com", owner=None, team="hooks")
    with SmtpSink() as sink:
        settings = sink.settings(
            webhooks={"chat": WebhookSettings("chat", url, secret_env="TETRA_TEST_HOOK_SECRET")},
            teams={"hooks": TeamRoute(webhooks=("chat",))},
        )
        outbox = OutboxStore(ca.db)
        at = t0 + 61 * DAY
        await NotificationPlanner(ca, settings, outbox).plan(at)
        assert await deliver_due(outbox, settings, "p1", at) == DeliveryResult(failed=1)
        row = await outbox.get(f"expiry:30d:{cert.id}:team:webhook:chat")
        assert row is not None and row.last_error == f"webhook chat: {url} answered HTTP 500"
        assert await deliver_due(outbox, settings, "p1", at + 30 * SECOND) == DeliveryResult(delivered=1)
    assert len(hook.seen) == 2 and all(verified for *_, verified in hook.seen)
    assert hook.seen[0][0] == hook.seen[1][0] and len(hook.seen[0][0]) == 32
    _, signature, body, _ = hook.seen[1]
    document = json.loads(body)
    assert document["certificate"]["inventory_id"] == cert.id and document["threshold"] == "30d"
    assert not verify_signature(b"wrong secret", signature, body)
    assert not verify_signature(b"hook secret", signature, body.replace(b"30d", b"14d"))
    stamp = int(signature.split(",")[0].removeprefix("t="))
    assert verify_signature(b"hook secret", signature, body, now=stamp + 300)
    assert not verify_signature(b"hook secret", signature, body, now=stamp + 301)
