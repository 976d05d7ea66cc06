"""One inventory that every report has something to say about, made through the real CA.

Issued by Tetra (ledger, then mirrored): A (acme, ends in 20 days, declared for and seen at a
load balancer), B (est, A's
renewal through the ledger's lineage: on time), C (cli, renews the expired import X: late),
R (cli, revoked and seen again after it). Imported: L (RSA-1024 signed with SHA-1 by the openssl
CLI, ends in 10 days, deployed where a scan found TLS 1.0) and X (expired 3 days ago). The demo
CA's own certificates (its HTTPS and SCEP RA certificates) are there from the start: `baseline`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, CertificateRef, EnrollmentKind, InventoryFields, Issued, Requester
from ca.inventory.model import Edit, InventoryFilter, NewEntry, Source
from ca.inventory.scans import FindingNote, LocationResult
from ca.inventory.store import Seen
from ca.service import CertificateAuthority
from tests.helpers import enroll, make_csr
from tests.inventory_certs import foreign_der, legacy_der

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)


@dataclass(frozen=True)
class Scenario:
    now: dt.datetime
    baseline: frozenset[int]  # inventory ids of the demo CA's own certificates
    a: int
    b: int
    c: int
    r: int
    legacy: int
    expired: int


async def issue(
    ca: CertificateAuthority,
    name: str,
    *,
    protocol: str = "cli",
    owner: str | None = None,
    days: int | None = None,
    replaces: x509.Certificate | None = None,
    location: str | None = None,
) -> x509.Certificate:
    csr, _ = make_csr([name])
    request = enrollment_from_csr(
        csr,
        protocol=protocol,
        profile_name="tls-server",
        requester=OPERATOR,
        kind=EnrollmentKind.REKEY if replaces else EnrollmentKind.NEW,
        inventory=InventoryFields(owner, "web", "shop", location),
    )
    if days is not None:
        request = dataclasses.replace(request, not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=days))
    if replaces is not None:
        request = dataclasses.replace(request, replaces=CertificateRef(ca.default_issuer, replaces.serial_number))
    outcome = await enroll(ca, request)
    assert isinstance(outcome, Issued)
    return outcome.certificate


async def inventory_id(ca: CertificateAuthority, certificate: x509.Certificate) -> int:
    found = await ca.inventory.find(certificate.fingerprint(hashes.SHA256()).hex())
    assert found is not None
    return found.id


async def build(ca: CertificateAuthority, tmp_path: Path) -> Scenario:
    now = dt.datetime.now(dt.UTC)
    await ca.inventory.sync(now)
    baseline = frozenset(r.id for r in await ca.inventory.records(InventoryFilter()))

    a = await issue(ca, "soon.example.com", protocol="acme", owner="alice@example.com", days=20, location="shop-lb")
    b = await issue(ca, "soon.example.com", protocol="est", owner="alice@example.com", replaces=a)
    c = await issue(ca, "late.example.com", owner="dave@example.com")
    r = await issue(ca, "revoked.example.com")
    placed = await ca.inventory.add(
        [
            NewEntry(legacy_der("old.legacy.example.org", tmp_path, days=10), Source.IMPORTED, owner="bob@example.com"),
            NewEntry(
                foreign_der("gone.example.net", not_after=now - dt.timedelta(days=3)),
                Source.IMPORTED,
                owner="carol@example.com",
            ),
        ],
        actor="test",
        now=now,
    )
    legacy, expired = placed[0].id, placed[1].id
    await ca.inventory.sync(now)
    await ca.inventory.edit(await inventory_id(ca, c), Edit(replaces_id=expired), actor="test", now=now)

    await ca.inventory.sight(
        [Seen(a, "endpoint", "10.0.0.1:443"), Seen(r, "endpoint", "10.0.0.9:443")], at=now, scan_id=None
    )
    await ca.revoke(ca.default_issuer, r.serial_number, "keyCompromise", requester="test")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    await ca.inventory.sight([Seen(r, "endpoint", "10.0.0.9:443")], at=later, scan_id=None)

    legacy_record = await ca.inventory.get(legacy)
    assert legacy_record is not None
    legacy_certificate = x509.load_der_x509_certificate(legacy_record.der)
    scan = await ca.scans.start("network", ["legacy.example.org:443"], actor="test", now=later)
    finding = FindingNote("protocol-tls1.0", "warning", "accepts TLS 1.0")
    await ca.scans.record(
        scan,
        [LocationResult("endpoint", "legacy.example.org:443", (legacy_certificate,), (finding,), ("TLSv1",))],
        at=later,
    )
    await ca.scans.finish(scan, status="done", summary={}, actor="test", now=later)
    return Scenario(
        now=dt.datetime.now(dt.UTC),
        baseline=baseline,
        a=await inventory_id(ca, a),
        b=await inventory_id(ca, b),
        c=await inventory_id(ca, c),
        r=await inventory_id(ca, r),
        legacy=legacy,
        expired=expired,
    )


async def baseline_issuers(ca: CertificateAuthority, baseline: frozenset[int]) -> Counter[str]:
    """How many of the demo CA's own certificates each issuer signed, as the inventory report
    names issuers (a Tetra CA by its name, any other by its DN)."""
    records = await ca.inventory.records(InventoryFilter(limit=100_000))
    return Counter(r.issuer_name or r.issuer_dn for r in records if r.id in baseline)
