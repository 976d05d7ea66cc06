"""Requests held for approval tell their approvers once, and escalate once when they wait too long.

Requests are held by the real CA core (the demo's ``code-signing`` profile has approval =
"manual"), on SQLite and PostgreSQL; the CA's clock is frozen and advanced, so "four hours later"
takes no time. Mail goes to a real SMTP server on loopback (aiosmtpd) and webhooks to a real
aiohttp receiver that verifies each signature; the server's jobs and `tetra notify run` are the
real ones. The exactly-once guarantee is the outbox's (CLM-02)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import update

from ca.clock import FrozenClock
from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Pending, Requester
from ca.notices.outbox import OutboxStore
from ca.notices.planner import NotificationPlanner
from ca.notices.settings import ApprovalSettings, NotificationSettings, TeamRoute, WebhookSettings
from ca.service import CertificateAuthority
from ca.store.tables import enrollment_requests
from server.cli import main
from server.config import ServerConfig
from server.notify.delivery import DeliveryResult, deliver_all_due
from server.notify.jobs import NotificationJobs
from server.notify.webhook import verify_signature
from server.wiring import build_ca, read_config
from tests.conftest import lint_everything_issued
from tests.helpers import make_csr
from tests.notify_support import ADMIN, SmtpSink

HOUR = dt.timedelta(hours=1)
SECOND = dt.timedelta(seconds=1)
APPROVERS = ("ra-one@example.com", "ra-two@example.com")
BOSS = "pki-lead@example.com"
WEB_APPROVER = "web-ra@example.com"
SECRET = b"approvals hook secret"


@pytest.fixture
async def clocked(config: ServerConfig) -> AsyncIterator[tuple[CertificateAuthority, FrozenClock]]:
    """The CA under test with a clock that moves only when the test says so (lints what it issued)."""
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    authority = await build_ca(config, clock=clock)
    try:
        yield authority, clock
        await lint_everything_issued(authority)
    finally:
        await authority.close()


class HookReceiver:
    """A webhook receiver on 127.0.0.1: keeps each document whose signature verifies."""

    def __init__(self) -> None:
        self.documents: list[dict[str, object]] = []
        self.forged = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(SECRET, request.headers.get("Tetra-Signature", ""), body):
            self.forged += 1
            return web.Response(status=401)
        self.documents.append(json.loads(body))
        return web.Response(status=204)


@pytest.fixture
async def hook(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[HookReceiver, WebhookSettings]]:
    monkeypatch.setenv("TETRA_TEST_APPROVALS_SECRET", SECRET.decode())
    receiver = HookReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield receiver, WebhookSettings("ra-chat", f"http://127.0.0.1:{port}/hook", "TETRA_TEST_APPROVALS_SECRET")
    finally:
        await runner.cleanup()


async def hold(ca: CertificateAuthority, cn: str, *, team: str | None = None) -> int:
    """A code-signing request from an EST client, held by the CA core for an officer; its id.
    ``team`` is written to the request's team column, as the team-aware hold records it."""
    csr, _ = make_csr([], cn=cn)
    request = enrollment_from_csr(
        csr, protocol="est", profile_name="code-signing", requester=Requester("est-client", AuthMethod.PASSWORD)
    )
    outcome = await ca.enroll(await ca.decide(request))
    assert isinstance(outcome, Pending)
    if team is not None:
        statement = update(enrollment_requests).where(enrollment_requests.c.id == outcome.request_id)
        await ca.db.write(lambda tx: tx.conn.execute(statement.values(team=team)))
    return outcome.request_id


def by_recipient(sink: SmtpSink) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for recipient, subject in sink.received():
        out.setdefault(recipient, []).append(subject)
    return out


async def test_approvers_told_once_and_escalation_only_for_what_still_waits(
    clocked: tuple[CertificateAuthority, FrozenClock], hook: tuple[HookReceiver, WebhookSettings]
) -> None:
    """CLM-02: each held request is told to every approver (two addresses and a webhook) once,
    however often it is planned; once it has waited longer than escalate_after, one escalation
    goes to the escalation list (an address and the webhook), and none for requests approved or rejected meanwhile."""
    ca, clock = clocked
    receiver, webhook = hook
    waiting = await hold(ca, "Waiting Signer")
    approved = await hold(ca, "Approved Signer")
    rejected = await hold(ca, "Rejected Signer")
    with SmtpSink() as sink:
        settings = sink.settings(
            webhooks={"ra-chat": webhook},
            approvals=ApprovalSettings(
                email=APPROVERS,
                webhooks=("ra-chat",),
                escalate_after=4 * HOUR,
                escalate_email=(BOSS,),
                escalate_webhooks=("ra-chat",),
            ),
        )
        outbox = OutboxStore(ca.db)
        planner = NotificationPlanner(ca, settings, outbox)
        first = await planner.plan_approvals(clock.now())
        assert (first.due, first.queued, first.unroutable) == (9, 9, 0)  # 3 requests x 3 recipients
        assert await deliver_all_due(outbox, settings, "p1", clock.now()) == DeliveryResult(delivered=9)
        told = by_recipient(sink)
        assert sorted(told) == sorted(APPROVERS)
        for subjects in told.values():
            assert sorted(subjects) == sorted(
                f"[Tetra] approval needed: request {i}, CN={cn} Signer"
                for i, cn in ((waiting, "Waiting"), (approved, "Approved"), (rejected, "Rejected"))
            )
        mail = next(m for m in sink.messages if f"request {waiting}," in str(m["Subject"]))
        assert isinstance(mail, EmailMessage)
        body = mail.get_content()
        for fact in (
            f"request:   {waiting}",
            "protocol:  est",
            "profile:   code-signing",
            "subject:   CN=Waiting Signer",
            "names:     -",
            "requester: est-client",
            "team:      -",
            f"tetra requests approve {waiting}",
            "/ui/requests",
        ):
            assert fact in body, fact
        assert receiver.forged == 0
        assert sorted(d["request"]["id"] for d in receiver.documents) == sorted([waiting, approved, rejected])  # type: ignore[index]
        assert {d["event"] for d in receiver.documents} == {"request.pending"}

        # Planning again, by the short period or the whole pass, adds nothing.
        assert (await planner.plan_approvals(clock.now() + 10 * SECOND)).queued == 0
        assert (await planner.plan(clock.now() + 20 * SECOND)).queued == 0
        assert await deliver_all_due(outbox, settings, "p1", clock.now() + 30 * SECOND) == DeliveryResult()

        await ca.approve(approved, "officer")
        await ca.reject(rejected, "officer", "not ours")
        clock.advance(4 * HOUR)
        assert (await planner.plan_approvals(clock.now())).queued == 0  # not longer than 4 h yet
        clock.advance(SECOND)
        late = await planner.plan_approvals(clock.now())
        assert (late.due, late.queued) == (5, 2)  # the 3 approvers again (queued before), the lead and the hook
        assert (await planner.plan(clock.now() + 30 * SECOND)).queued == 0
        assert await deliver_all_due(outbox, settings, "p1", clock.now()) == DeliveryResult(delivered=2)
        escalation = by_recipient(sink)[BOSS]
        assert escalation == [f"[Tetra] still waiting: request {waiting}, CN=Waiting Signer"]
        assert len(sink.received()) == 7
        row = await outbox.get(f"approval.pending:{waiting}:escalation:email:{BOSS}")
        assert row is not None and "has waited 4 h 0 min" in row.body
        assert await outbox.get(f"approval.pending:{approved}:escalation:email:{BOSS}") is None
        escalated = [d for d in receiver.documents if d["event"] == "request.escalated"]
        assert len(escalated) == 1 and escalated[0]["request"]["id"] == waiting  # type: ignore[index]
        assert escalated[0]["key"] == f"approval.pending:{waiting}:escalation:webhook:ra-chat"
        assert receiver.forged == 0


async def test_team_approvers_and_fall_through_to_the_admins(
    clocked: tuple[CertificateAuthority, FrozenClock],
) -> None:
    """A team's own approvers replace the general ones for its requests; with nobody to tell
    (no approvers, no escalation list) the notice goes to the admins rather than to nobody, and
    without even admins it is counted as without a recipient."""
    ca, clock = clocked
    web_request = await hold(ca, "Web Signer", team="web")
    other_request = await hold(ca, "Other Signer", team="ops")
    with SmtpSink() as sink:
        settings = sink.settings(
            teams={"web": TeamRoute(approvers_email=(WEB_APPROVER,))},
            approvals=ApprovalSettings(escalate_after=HOUR),
        )
        outbox = OutboxStore(ca.db)
        planner = NotificationPlanner(ca, settings, outbox)
        assert (await planner.plan_approvals(clock.now())).queued == 2
        await deliver_all_due(outbox, settings, "p1", clock.now())
        assert sorted(sink.received()) == [
            (ADMIN, f"[Tetra] approval needed: request {other_request}, CN=Other Signer"),
            (WEB_APPROVER, f"[Tetra] approval needed: request {web_request}, CN=Web Signer"),
        ]
        web_row = await outbox.get(f"approval.pending:{web_request}:approvers:email:{WEB_APPROVER}")
        assert web_row is not None and "team:      web" in web_row.body
        clock.advance(HOUR + SECOND)
        assert (await planner.plan_approvals(clock.now())).queued == 2  # both escalate to the admins
        assert await outbox.get(f"approval.pending:{web_request}:escalation:email:{ADMIN}") is not None

    nobody = await NotificationPlanner(ca, NotificationSettings(), OutboxStore(ca.db)).plan_approvals(clock.now())
    assert (nobody.due, nobody.queued, nobody.unroutable) == (0, 0, 2)


async def test_server_jobs_tell_approvers_between_full_passes(
    clocked: tuple[CertificateAuthority, FrozenClock],
) -> None:
    """The server's own jobs announce held requests: the first by whichever pass comes first, a
    request held later by the short approvals period, long before the next full pass (an hour
    away here)."""
    ca, _ = clocked

    async def told(sink: SmtpSink, count: int) -> None:
        for _ in range(200):
            if len(sink.received()) >= count:
                return
            await asyncio.sleep(0.05)

    with SmtpSink() as sink:
        settings = sink.settings(interval_seconds=3600.0, approvals=ApprovalSettings(email=APPROVERS))
        jobs = NotificationJobs(ca, settings, holder="leader", deliver_every=0.05, approvals_every=0.05)
        try:
            jobs.start()
            first = await hold(ca, "First Signer")
            await told(sink, 2)
            later = await hold(ca, "Later Signer")  # the full pass ran at start; the next is an hour away
            await told(sink, 4)
        finally:
            await jobs.stop()
        assert jobs.leader
        assert sorted(sink.received()) == sorted(
            (a, f"[Tetra] approval needed: request {i}, CN={cn} Signer")
            for a in APPROVERS
            for i, cn in ((first, "First"), (later, "Later"))
        )


def test_notify_run_sends_approval_notices_and_refuses_a_bad_setting(
    ca_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tetra notify run` plans and sends the held requests' notices; a bad [notifications.approvals]
    setting stops it with one line naming the key, exit 2, nothing sent."""
    config = ca_dir / "approvals.toml"
    base = (ca_dir / "tetra.toml").read_text()

    async def held() -> int:
        authority = await build_ca(read_config(ca_dir / "tetra.toml"))
        try:
            return await hold(authority, "CLI Signer")
        finally:
            await authority.close()

    request_id = asyncio.run(held())
    with SmtpSink() as sink:
        smtp = f'[notifications.smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n'
        for bad, message in (
            ('escalate_after = "soon"', "notifications.approvals.escalate_after: 'soon' is not a duration"),
            ('escalate_after = "0s"', "notifications.approvals.escalate_after: must be positive"),
            ('email = ["ra at example.com"]', "notifications.approvals.email: not an email address"),
            ('webhooks = ["nowhere"]', "notifications.approvals.webhooks: unknown webhook"),
            ('escalate_webhooks = ["nowhere"]', "notifications.approvals.escalate_webhooks: unknown webhook"),
            ("escalate_emails = []", "notifications.approvals.escalate_emails: unknown key"),
        ):
            config.write_text(f"{base}[notifications]\n{smtp}[notifications.approvals]\n{bad}\n")
            code = main(["notify", "run", "--config", str(config)])
            _, err = capsys.readouterr()
            assert code == 2, err
            assert err.startswith("tetra: error: ") and message in err and len(err.strip().splitlines()) == 1
        team = '[notifications.teams.web]\napprovers_email = ["nope"]\n'
        config.write_text(f"{base}[notifications]\n{smtp}{team}")
        assert main(["notify", "run", "--config", str(config)]) == 2
        assert "notifications.teams.web.approvers_email: not an email address" in capsys.readouterr().err
        assert sink.received() == []

        approvals = '[notifications.approvals]\nemail = ["ra-one@example.com"]\nescalate_after = "4h"\n'
        config.write_text(f"{base}[notifications]\n{smtp}{approvals}")
        code = main(["notify", "run", "--config", str(config)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "1 newly queued" in out and "delivered: 1," in out
        assert sink.received() == [(APPROVERS[0], f"[Tetra] approval needed: request {request_id}, CN=CLI Signer")]
