"""The inventory store on SQLite and PostgreSQL: one record per certificate whatever its sources
(CLM-01), what Tetra issued mirrored from the ledger, and the filters `tetra inventory` offers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, InventoryFields, Issued, Requester
from ca.inventory.model import Edit, InventoryFilter, NewEntry, Source, Status
from ca.inventory.store import Seen
from ca.service import CertificateAuthority
from tests.helpers import enroll, make_csr
from tests.inventory_certs import foreign_der, legacy_der

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)


async def _issue(ca: CertificateAuthority, name: str, owner: str | None = None) -> x509.Certificate:
    csr, _ = make_csr([name])
    request = enrollment_from_csr(
        csr, protocol="cli", profile_name="tls-server", requester=OPERATOR, inventory=InventoryFields(owner, "web")
    )
    outcome = await enroll(ca, request)
    assert isinstance(outcome, Issued)
    return outcome.certificate


async def test_discovered_tetra_certificate_is_one_record_with_two_locations(ca: CertificateAuthority) -> None:
    """CLM-01: a certificate Tetra issued, seen at two endpoints and again later, is one inventory
    record, linked to the CA's ledger, with two sightings whose first and last seen are kept."""
    cert = await _issue(ca, "www.example.com", owner="alice@example.com")
    t0 = dt.datetime.now(dt.UTC)
    # Seen before the mirror ran: a 'discovered' row, later linked rather than duplicated.
    await ca.inventory.sight([Seen(cert, "endpoint", "10.0.0.1:443")], at=t0, scan_id=None)
    await ca.inventory.sync(t0)
    later = t0 + dt.timedelta(hours=1)
    await ca.inventory.sight(
        [Seen(cert, "endpoint", "10.0.0.1:443"), Seen(cert, "endpoint", "10.0.0.2:443")], at=later, scan_id=None
    )
    everything = await ca.inventory.records(InventoryFilter(name="www.example.com"))
    assert len(everything) == 1  # the demo CA's own certificates (RA, HTTPS) are in the inventory too
    record = everything[0]
    assert record.certificate_id is not None and record.issuer_name == ca.default_issuer
    assert record.owner == "alice@example.com" and record.team == "web"
    assert record.profile == "tls-server" and record.renewal_method == "manual"
    assert record.first_seen_at == t0 and record.last_seen_at == later
    seen = {s.location: s for s in await ca.inventory.sightings(record.id)}
    assert set(seen) == {"10.0.0.1:443", "10.0.0.2:443"}
    assert seen["10.0.0.1:443"].first_seen == t0 and seen["10.0.0.1:443"].last_seen == later
    assert seen["10.0.0.2:443"].first_seen == later


async def test_mirror_follows_the_ledger_and_revocation(ca: CertificateAuthority) -> None:
    """Everything issued reaches the inventory once (a second sync adds nothing), and a revocation
    in the ledger shows at once, without another sync."""
    now = dt.datetime.now(dt.UTC)
    await ca.inventory.sync(now)
    before = await ca.inventory.count(InventoryFilter(source=Source.TETRA))
    certs = [await _issue(ca, f"h{n}.example.com") for n in range(3)]
    assert await ca.inventory.sync(now) >= 3
    assert await ca.inventory.sync(now) == 0
    assert await ca.inventory.count(InventoryFilter(source=Source.TETRA)) == before + 3
    assert await ca.inventory.count(InventoryFilter(source=Source.TETRA, name="example.com")) == 3
    await ca.revoke(ca.default_issuer, certs[0].serial_number, "keyCompromise", requester="test")
    revoked = await ca.inventory.records(InventoryFilter(status=Status.REVOKED, now=now))
    assert [r.serial for r in revoked] == [format(certs[0].serial_number, "x")]
    assert revoked[0].revocation_reason == "keyCompromise"
    assert revoked[0].status(now) is Status.REVOKED


async def test_import_filters_and_edits(ca: CertificateAuthority, tmp_path: Path) -> None:
    """Imported certificates: known ones are not duplicated and keep an operator's edits; the
    filters find weak keys, SHA-1, names under a domain, tags, and expiry."""
    now = dt.datetime.now(dt.UTC)
    weak = legacy_der("old.legacy.example.org", tmp_path, days=10)
    good = foreign_der("api.example.net", not_after=now + dt.timedelta(days=40))
    placed = await ca.inventory.add(
        [NewEntry(weak, Source.IMPORTED, owner="bob@example.com", tags=("pci",)), NewEntry(good, Source.IMPORTED)],
        actor="test",
        now=now,
    )
    assert [p.created for p in placed] == [True, True]
    edited = await ca.inventory.edit(
        placed[0].id, Edit(owner="carol@example.com", add_tags=("legacy",)), actor="t", now=now
    )
    assert edited.owner == "carol@example.com" and edited.tags == ("legacy", "pci")
    again = await ca.inventory.add([NewEntry(weak, Source.IMPORTED, owner="dave@example.com")], actor="test", now=now)
    assert [p.created for p in again] == [False]
    record = await ca.inventory.get(placed[0].id)
    assert record is not None and record.owner == "carol@example.com"  # the import filled blanks only

    async def ids(**kw: object) -> list[int]:
        return [r.id for r in await ca.inventory.records(InventoryFilter(**kw))]  # type: ignore[arg-type]

    await ca.inventory.sync(now)  # the demo CA's own certificates join the imported ones
    assert await ids(key_size_below=2048) == [placed[0].id]
    assert await ids(signature_algorithm="SHA1WithRSAEncryption") == [placed[0].id]
    assert await ids(name="example.org") == [placed[0].id]
    assert await ids(name="legacy.example.org") == [placed[0].id]
    assert await ids(name="xample.org") == []
    assert await ids(name="api.example.net") == [placed[1].id]
    assert await ids(tag="pci") == [placed[0].id]
    assert await ids(expiring_before=now + dt.timedelta(days=30)) == [placed[0].id]
    assert await ids(status=Status.EXPIRING, now=now) == [placed[0].id]
    assert placed[1].id in await ids(status=Status.VALID, now=now)
    assert await ids(status=Status.VALID, now=now, source=Source.IMPORTED) == [placed[1].id]
    found = await ca.inventory.find(placed[1].fingerprint[:12])
    assert found is not None and found.id == placed[1].id and found.key_algorithm == "ec"
