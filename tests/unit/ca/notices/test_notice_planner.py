"""A notification pass over the real CA's inventory, on SQLite and PostgreSQL: what is queued,
to whom, once (CLM-02), how it escalates, what a renewal silences, the weakness rules, and the
daily digest. Time is driven through the pass's ``now``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from cryptography import x509

from ca.inventory.model import Edit
from ca.inventory.scans import FindingNote, LocationResult
from ca.inventory.store import Seen
from ca.notices.outbox import OutboxStore
from ca.notices.planner import NotificationPlanner
from ca.notices.tables import outbox
from ca.service import CertificateAuthority
from tests.inventory_certs import foreign_der, legacy_der
from tests.notify_support import ADMIN, TEAM, import_one, issue, notification_settings

DAY = dt.timedelta(days=1)


async def _keys(ca: CertificateAuthority, inventory_id: int) -> set[str]:
    query = outbox.select().where(outbox.c.inventory_id == inventory_id)
    return await ca.db.read(lambda conn: {r.key for r in conn.execute(query)})


def _planner(ca: CertificateAuthority) -> NotificationPlanner:
    """Planning only: nothing is sent in these tests."""
    return NotificationPlanner(ca, notification_settings(), OutboxStore(ca.db))


async def test_expiry_notice_once_per_threshold_escalating(ca: CertificateAuthority) -> None:
    """CLM-02: each (certificate, threshold, recipient) is queued once however often a pass runs;
    the first threshold goes to the owner, the next to the team too, the third to the admins too;
    an owner without an address falls through to the team."""
    t0 = dt.datetime.now(dt.UTC)
    alice = await issue(ca, "alice.example.com", owner="alice@example.com")
    bob = await issue(ca, "bob.example.com", owner="Bob in accounting")
    planner = _planner(ca)
    assert await _keys(ca, alice.id) == set()
    first = await planner.plan(t0 + 61 * DAY)  # 29 days left: the 30-day threshold
    assert first.queued >= 2
    assert await _keys(ca, alice.id) == {f"expiry:30d:{alice.id}:owner:email:alice@example.com"}
    assert await _keys(ca, bob.id) == {f"expiry:30d:{bob.id}:team:email:{TEAM}"}
    again = await planner.plan(t0 + 61 * DAY + dt.timedelta(hours=1))
    assert again.queued == 0 and again.due == first.due
    await planner.plan(t0 + 77 * DAY)  # 13 days left: 14d, one threshold passed: the team too
    await planner.plan(t0 + 84 * DAY)  # 6 days left: 7d, two passed: the admins too
    assert await _keys(ca, alice.id) == {
        f"expiry:30d:{alice.id}:owner:email:alice@example.com",
        f"expiry:14d:{alice.id}:owner:email:alice@example.com",
        f"expiry:14d:{alice.id}:team:email:{TEAM}",
        f"expiry:7d:{alice.id}:owner:email:alice@example.com",
        f"expiry:7d:{alice.id}:team:email:{TEAM}",
        f"expiry:7d:{alice.id}:admin:email:{ADMIN}",
    }
    body = await planner.outbox.get(f"expiry:7d:{alice.id}:admin:email:{ADMIN}")
    assert body is not None and "alice.example.com" in body.subject and "expires in 6 days" in body.subject


async def test_late_import_gets_the_most_urgent_notice_only(ca: CertificateAuthority) -> None:
    """CLM-02: a certificate imported five days before expiry gets the 7-day notice, once."""
    now = dt.datetime.now(dt.UTC)
    late = await import_one(
        ca,
        foreign_der("late.example.org", not_before=now - 85 * DAY, not_after=now + 5 * DAY),
        owner="carol@example.com",
        team=None,
    )
    planner = _planner(ca)
    await planner.plan(now)
    await planner.plan(now + DAY)
    keys = await _keys(ca, late.id)
    assert {k.split(":")[1] for k in keys} == {"7d"}
    assert f"expiry:7d:{late.id}:owner:email:carol@example.com" in keys


async def test_renewed_certificates_are_not_notified(ca: CertificateAuthority) -> None:
    """A certificate replaced by a later one (replaces_id), or succeeded by one with the same names
    and issuer issued later, gets no expiry notice; a successor with other names does not count."""
    now = dt.datetime.now(dt.UTC)
    old = await issue(ca, "renewed.example.com", owner="dave@example.com")
    new = await issue(ca, "renewed-too.example.com", owner="dave@example.com", days=150)
    await ca.inventory.edit(new.id, Edit(replaces_id=old.id), actor="test", now=now)
    names_old = await import_one(
        ca,
        foreign_der("same.example.org", not_before=now - 60 * DAY, not_after=now + 20 * DAY),
        owner="erin@example.com",
        team=None,
    )
    await import_one(
        ca,
        foreign_der("same.example.org", not_before=now - DAY, not_after=now + 89 * DAY),
        owner="erin@example.com",
        team=None,
    )
    other_old = await import_one(
        ca,
        foreign_der("alone.example.org", not_before=now - 60 * DAY, not_after=now + 20 * DAY),
        owner="erin@example.com",
        team=None,
    )
    await import_one(
        ca,
        foreign_der("other.example.org", not_before=now - DAY, not_after=now + 89 * DAY),
        owner="erin@example.com",
        team=None,
    )
    await _planner(ca).plan(now + 61 * DAY)
    assert await _keys(ca, old.id) == set()
    assert await _keys(ca, names_old.id) == set()
    await _planner(ca).plan(now)
    assert await _keys(ca, other_old.id) == {f"expiry:30d:{other_old.id}:owner:email:erin@example.com"}


async def test_weakness_rules_notify_once(ca: CertificateAuthority, tmp_path: Path) -> None:
    """Weak key and SHA-1 signature, a revoked certificate still deployed (owner, team and admins),
    never deployed (only once a discovery scan has finished), and a weak endpoint: each once."""
    now = dt.datetime.now(dt.UTC)
    weak = await import_one(ca, legacy_der("old.example.org", tmp_path), owner="frank@example.com", team=None)
    revoked = await issue(ca, "revoked.example.com", owner="grace@example.com")
    idle = await issue(ca, "idle.example.com", owner="heidi@example.com")
    await ca.revoke(ca.default_issuer, int(revoked.serial, 16), "keyCompromise", requester="test")
    certificate = x509.load_der_x509_certificate(revoked.der)
    await ca.inventory.sight([Seen(certificate, "endpoint", "10.0.0.9:443")], at=now + DAY, scan_id=None)
    planner = _planner(ca)
    await planner.plan(now + 8 * DAY)
    assert await _keys(ca, weak.id) == {
        f"weak-key:{weak.id}:owner:email:frank@example.com",
        f"weak-signature:{weak.id}:owner:email:frank@example.com",
    }
    assert await _keys(ca, revoked.id) == {
        f"revoked-deployed:{revoked.id}:owner:email:grace@example.com",
        f"revoked-deployed:{revoked.id}:team:email:{TEAM}",
        f"revoked-deployed:{revoked.id}:admin:email:{ADMIN}",
    }
    assert await _keys(ca, idle.id) == set()  # no scan has finished: everything would be "never deployed"
    scan = await ca.scans.start("network", ["10.0.0.0/24"], actor="test", now=now + 8 * DAY)
    finding = FindingNote("protocol-tls1.0", "warning", "offers TLS 1.0")
    await ca.scans.record(
        scan, [LocationResult("endpoint", "10.0.0.7:443", (certificate,), findings=(finding,))], at=now + 8 * DAY
    )
    await ca.scans.finish(scan, status="done", summary={}, actor="test", now=now + 8 * DAY)
    for _ in range(2):
        await planner.plan(now + 9 * DAY)
    assert await _keys(ca, idle.id) == {f"never-deployed:{idle.id}:owner:email:heidi@example.com"}
    assert "weak-endpoint:protocol-tls1.0:@10.0.0.7:443:owner:email:grace@example.com" in await _keys(ca, revoked.id)
    again = await planner.plan(now + 9 * DAY)
    assert again.queued == 0


async def test_digest_once_a_day_per_recipient(ca: CertificateAuthority) -> None:
    """The digest goes at or after digest_hour_utc, once a day per recipient (owner and team
    merged where they are the same address), and not at all when there is nothing to say."""
    now = dt.datetime.now(dt.UTC)
    planner = _planner(ca)
    day = (now + 70 * DAY).replace(hour=3)
    assert await planner.digest(now.replace(hour=9)) == 0  # a fresh CA: nothing expires soon, nothing weak
    ivan = await issue(ca, "digest.example.com", owner="ivan@example.com")
    scan = await ca.scans.start("network", ["10.0.0.8"], actor="test", now=now)
    finding = FindingNote("protocol-tls1.1", "warning", "offers TLS 1.1")
    served = x509.load_der_x509_certificate(ivan.der)
    await ca.scans.record(scan, [LocationResult("endpoint", "10.0.0.8:443", (served,), findings=(finding,))], at=now)
    assert await planner.digest(day) == 0  # before 08:00 UTC
    assert await planner.digest(day.replace(hour=9)) >= 2  # ivan and the web team (and the demo's own)
    assert await planner.digest(day.replace(hour=17)) == 0
    mail = await planner.outbox.get(f"digest:{day.date().isoformat()}:email:ivan@example.com")
    assert mail is not None and "digest.example.com" in mail.body
    assert "1 expiring, 1 weakness findings" in mail.subject
    assert "weak-endpoint:protocol-tls1.1 at 10.0.0.8:443  digest.example.com" in mail.body


async def test_webhook_body_is_the_json_document(ca: CertificateAuthority) -> None:
    """A team's webhook gets a JSON document naming the event, the certificate and the key."""
    import dataclasses

    from ca.notices.settings import TeamRoute, WebhookSettings

    now = dt.datetime.now(dt.UTC)
    cert = await issue(ca, "hook.example.com", owner=None, team="hooks")
    base = _planner(ca)
    settings = dataclasses.replace(
        base.settings,
        webhooks={"chat": WebhookSettings("chat", "http://127.0.0.1:9/", secret_env="X")},
        teams={"hooks": TeamRoute(webhooks=("chat",))},
    )
    planner = NotificationPlanner(ca, settings, base.outbox)
    await planner.plan(now + 61 * DAY)
    key = f"expiry:30d:{cert.id}:team:webhook:chat"
    message = await planner.outbox.get(key)
    assert message is not None
    document = json.loads(message.body)
    assert document["event"] == "certificate.expiring" and document["threshold"] == "30d"
    assert document["certificate"]["inventory_id"] == cert.id and document["key"] == key
