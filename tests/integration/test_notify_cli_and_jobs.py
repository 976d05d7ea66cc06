"""`tetra notify test|digest` as an operator runs them (the CLI's entry point, a real SMTP server
on loopback), their one-line errors, and the server's notification jobs planning and delivering."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from ca.notices.outbox import OutboxStore
from ca.revocation import lease
from ca.service import CertificateAuthority
from server.cli import main
from server.notify import jobs as notify_jobs
from server.notify.jobs import NotificationJobs
from tests.inventory_certs import foreign_der
from tests.notify_support import ADMIN, SmtpSink, import_one

DAY = dt.timedelta(days=1)


def _tetra(ca_dir: Path, config_text: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`tetra notify ARGS` through the CLI's own entry point (exit code, stdout, stderr)."""
    config = ca_dir / "notify.toml"
    config.write_text((ca_dir / "tetra.toml").read_text() + config_text)
    code = main(["notify", *args, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def test_notify_test_reports_ok_or_the_error(
    ca_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tetra notify test --email` delivers one message, or says in one line why not; an unknown
    webhook name and a bad config are refused without a traceback."""
    monkeypatch.setenv("TETRA_HOOK_SECRET", "s")
    with SmtpSink() as sink:
        smtp = f'[notifications.smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nsecurity = "none"\n'
        code, out, err = _tetra(ca_dir, "[notifications]\n" + smtp, capsys, "test", "--email", ADMIN)
        assert code == 0, err
        assert out.strip() == f"ok: test message delivered by email to {ADMIN}"
        assert sink.received() == [(ADMIN, "[Tetra] test notification")]
        code, _, err = _tetra(ca_dir, "[notifications]\n" + smtp, capsys, "test", "--webhook", "nowhere")
        assert code == 2
        assert (
            err.strip()
            == "tetra: error: --webhook nowhere: no such webhook in [notifications.webhooks] (none configured)"
        )
    code, _, refused = _tetra(ca_dir, "[notifications]\n" + smtp, capsys, "test", "--email", ADMIN)  # server stopped
    assert code == 1 and refused.startswith(f"tetra: error: SMTP 127.0.0.1:{sink.port}: ")
    assert len(refused.strip().splitlines()) == 1
    hook = '[notifications.webhooks.chat]\nurl = "http://127.0.0.1:9/"\nsecret_env = "TETRA_HOOK_SECRET"\n'
    code, _, down = _tetra(ca_dir, "[notifications]\n" + hook, capsys, "test", "--webhook", "chat")
    assert code == 1 and down.startswith("tetra: error: webhook chat: http://127.0.0.1:9/: ")
    code, _, bad = _tetra(ca_dir, "[notifications]\nthresholds_days = [0]\n", capsys, "status")
    assert code == 2 and "notifications.thresholds_days: each threshold" in bad


def test_notify_digest_queues_once(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tetra notify digest` plans now whatever the hour: nothing to say on a fresh CA."""
    code, out, err = _tetra(ca_dir, "[notifications]\n", capsys, "digest")
    assert code == 0, err
    assert out.startswith("digest: 0 newly queued")


async def test_server_jobs_plan_on_the_leader_and_deliver(ca: CertificateAuthority) -> None:
    """The leader (lease "notifications") plans at once; every process delivers; a second
    process's jobs do not plan while the leader holds the lease."""
    now = dt.datetime.now(dt.UTC)
    cert = await import_one(
        ca,
        foreign_der("jobs.example.org", not_before=now - 80 * DAY, not_after=now + 10 * DAY),
        owner="jo@example.com",
        team=None,
    )
    with SmtpSink() as sink:
        settings = sink.settings(interval_seconds=3600.0)
        leader = NotificationJobs(ca, settings, holder="leader", deliver_every=0.2)
        follower = NotificationJobs(ca, settings, holder="follower", deliver_every=0.2)
        try:
            leader.start()
            await asyncio.sleep(0.05)  # the leader's first plan tick takes the lease
            follower.start()
            for _ in range(100):
                if len(sink.received()) == 2:
                    break
                await asyncio.sleep(0.1)
        finally:
            await follower.stop()
            await leader.stop()
        assert leader.leader and not follower.leader
        # 10 days left of 90: the 14-day notice, one threshold passed: the owner, and the team,
        # which it has none of, so the admins.
        assert sorted(r for r, _ in sink.received()) == ["jo@example.com", ADMIN]
        assert all("jobs.example.org expires in 10 days" in s for _, s in sink.received())
    row = await OutboxStore(ca.db).get(f"expiry:14d:{cert.id}:owner:email:jo@example.com")
    assert row is not None
    assert await lease.acquire(ca.db, notify_jobs.LEASE, "someone else", dt.timedelta(seconds=1))  # released
