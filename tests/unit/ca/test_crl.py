"""CRL generation on both stores: entries, numbering, partitions, deltas, grace, schedule, scale."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import select

from ca.clock import FrozenClock
from ca.errors import CAError
from ca.revocation import crl as crl_module
from ca.revocation.crl import COMPLETE, DELTA, CrlService
from ca.revocation.pointers import install_pointers, load_layout
from ca.revocation.tables import crls
from ca.service import CertificateAuthority
from server.config import ServerConfig
from server.wiring import build_ca
from tests.revocation_support import certificate_row, check_crl, crl_settings, insert_rows, issue

ISSUER = "issuing-ca"


def _der(published: Any) -> bytes:
    """The DER of a CRL the service published (set once it is signed)."""
    assert published.der is not None
    return bytes(published.der)


def _number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _by_scope(published: list[Any], kind: str = COMPLETE) -> dict[str, Any]:
    return {p.scope: p for p in published if p.kind == kind}


async def test_complete_crl_entries_reasons_and_invalidity_dates(ca: CertificateAuthority) -> None:
    """CRL-03, CRL-04, CRL-09: BR reasons as reasonCode, 'unspecified' left out, invalidity
    dates kept; issuer DN byte-identical, AKI and number present; lints clean (BR)."""
    revoked: dict[int, tuple[str, dt.datetime | None]] = {}
    invalid_since = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    for index, reason in enumerate(
        [
            "keyCompromise",
            "superseded",
            "unspecified",
            "cessationOfOperation",
            "affiliationChanged",
            "privilegeWithdrawn",
        ]
    ):
        issued = await issue(ca, f"c{index}.example.com")
        when = invalid_since if reason == "keyCompromise" else None
        await ca.revoke(ISSUER, issued.certificate.serial_number, reason, requester="t", invalidity_date=when)
        revoked[issued.certificate.serial_number] = (reason, when)
    await issue(ca, "still-good.example.com")
    service = CrlService(ca, crl_settings())
    [full] = await service.generate(ISSUER)
    crl = check_crl(_der(full), ca.issuers[ISSUER].certificate)
    assert {entry.serial_number for entry in crl} == set(revoked)
    for entry in crl:
        reason, when = revoked[entry.serial_number]
        if reason == "unspecified":
            with pytest.raises(x509.ExtensionNotFound):
                entry.extensions.get_extension_for_class(x509.CRLReason)
        else:
            assert (
                entry.extensions.get_extension_for_class(x509.CRLReason).value.reason.name
                == {
                    "keyCompromise": "key_compromise",
                    "superseded": "superseded",
                    "cessationOfOperation": "cessation_of_operation",
                    "affiliationChanged": "affiliation_changed",
                    "privilegeWithdrawn": "privilege_withdrawn",
                }[reason]
            )
        if when is not None:
            assert entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc == when
    assert full.next_update - full.this_update == dt.timedelta(days=7)


async def test_empty_crl_omits_the_revoked_list(ca: CertificateAuthority) -> None:
    """RFC 5280 §5.1.2.6: with nothing revoked, revokedCertificates is absent, not empty."""
    [full] = await CrlService(ca, crl_settings()).generate(ISSUER)
    crl = check_crl(_der(full), ca.issuers[ISSUER].certificate)
    assert len(crl) == 0
    assert b"\x30\x00" not in crl.tbs_certlist_bytes[-200:]


async def test_numbers_strictly_increase_across_processes_and_clock_steps(
    ca: CertificateAuthority, config: ServerConfig
) -> None:
    """CRL-02, ST-13, ST-15: two CAs on one store (two processes) generating at once, and a
    clock stepped back an hour: every number is new and larger, and fits 20 octets."""
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    other = await build_ca(config, clock=clock)
    try:
        ours, theirs = CrlService(ca, crl_settings()), CrlService(other, crl_settings())
        numbers = []
        for _ in range(3):
            results = await asyncio.gather(ours.generate(ISSUER), theirs.generate(ISSUER))
            numbers += sorted(r[0].number for r in results)
            clock.advance(dt.timedelta(hours=-1))
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
        assert all(n.bit_length() <= 159 for n in numbers)
        latest = await CrlService(ca, crl_settings()).fetch(ISSUER, "full", COMPLETE)  # what a reader sees
        assert latest is not None and latest.number == max(numbers)
    finally:
        await other.close()


async def test_failure_after_reserving_never_reuses_the_number(
    ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ST-14: a generation that dies after taking its number leaves the published CRL as it
    was, marks its intent failed, and the next one takes a larger number."""
    service = CrlService(ca, crl_settings())
    [first] = await service.generate(ISSUER)

    async def broken(*args: Any, **kwargs: Any) -> list[bytes]:
        raise CAError("HSM gone")

    monkeypatch.setattr(crl_module, "sign_all", broken)
    with pytest.raises(CAError):
        await service.generate(ISSUER)
    monkeypatch.undo()
    latest = await service.fetch(ISSUER, "full", COMPLETE)
    assert latest is not None and latest.number == first.number

    def statuses(conn: Any) -> list[tuple[int, str]]:
        return [
            (r.number, r.status) for r in conn.execute(select(crls.c.number, crls.c.status).order_by(crls.c.number))
        ]

    rows = await ca.db.read(statuses)
    assert rows[-1][1] == "failed" and rows[-1][0] > first.number
    [second] = await service.generate(ISSUER)
    assert second.number > rows[-1][0]


async def test_expired_entries_leave_after_the_grace_period(ca: CertificateAuthority) -> None:
    """CRL-05: an entry stays past its certificate's expiry for the grace period, then goes."""
    now = ca.clock.now()
    kept, dropped, live = (secrets.randbits(100) for _ in range(3))
    await insert_rows(
        ca,
        [
            certificate_row(
                ISSUER,
                kept,
                "revoked",
                now=now,
                revoked_at=now - dt.timedelta(days=30),
                reason="superseded",
                not_after=now - dt.timedelta(days=1),
            ),
            certificate_row(
                ISSUER,
                dropped,
                "revoked",
                now=now,
                revoked_at=now - dt.timedelta(days=30),
                reason="superseded",
                not_after=now - dt.timedelta(days=8),
            ),
            certificate_row(ISSUER, live, "revoked", now=now, revoked_at=now, reason="keyCompromise"),
        ],
    )
    [full] = await CrlService(ca, crl_settings(expired_grace=dt.timedelta(days=7))).generate(ISSUER)
    serials = {e.serial_number for e in check_crl(_der(full), ca.issuers[ISSUER].certificate)}
    assert serials == {kept, live}


async def test_partitions_are_named_in_certificates_and_cover_the_full_list(ca: CertificateAuthority) -> None:
    """CRL-06: the partition comes from the serial at issuance and is baked into the CRL DP;
    each partition CRL has an IDP with exactly that URL; partitions together = the full CRL."""
    settings = crl_settings(partitions=4, delta=True)
    await install_pointers(ca, settings)
    revoked = set()
    for index in range(12):
        issued = await issue(ca, f"p{index}.example.com")
        serial = issued.certificate.serial_number
        cdp = issued.certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        freshest = issued.certificate.extensions.get_extension_for_class(x509.FreshestCRL).value
        assert cdp[0].full_name[0].value == f"http://pki.example.com/crl/{ISSUER}/{serial % 4}.crl"
        assert freshest[0].full_name[0].value == f"http://pki.example.com/crl/{ISSUER}/{serial % 4}-delta.crl"
        if index % 2:
            await ca.revoke(ISSUER, serial, "superseded", requester="t")
            revoked.add(serial)
    service = CrlService(ca, settings)
    published = _by_scope(await service.generate(ISSUER))
    issuer_cert = ca.issuers[ISSUER].certificate
    union = set()
    for k in range(4):
        part = check_crl(published[f"part-{k}"].der, issuer_cert)
        idp = part.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
        assert idp.critical and idp.value.only_contains_user_certs
        assert idp.value.full_name is not None
        assert idp.value.full_name[0].value == f"http://pki.example.com/crl/{ISSUER}/{k}.crl"
        serials = {e.serial_number for e in part}
        assert all(s % 4 == k for s in serials)
        union |= serials
    full = check_crl(published["full"].der, issuer_cert)
    assert {e.serial_number for e in full} == union == revoked
    with pytest.raises(x509.ExtensionNotFound):
        full.extensions.get_extension_for_class(x509.IssuingDistributionPoint)


async def test_partition_count_is_fixed_at_first_use(ca: CertificateAuthority) -> None:
    """CRL-06: changing the setting later cannot move issued certificates to other partitions."""
    now = ca.clock.now()
    assert await load_layout(ca.db, [ISSUER], 4, now) == {ISSUER: 4}
    assert await load_layout(ca.db, [ISSUER], 16, now) == {ISSUER: 4}


async def test_delta_crl_lists_what_was_revoked_after_its_base(ca: CertificateAuthority) -> None:
    """RFC 5280 §5.2.4/§5.2.6: a delta names its base CRL number (critical), lists only later
    revocations, takes a number from the same sequence; the complete CRL points to it."""
    settings = crl_settings(delta=True)
    await install_pointers(ca, settings)
    before, after = await issue(ca, "before.example.com"), await issue(ca, "after.example.com")
    await ca.revoke(ISSUER, before.certificate.serial_number, "superseded", requester="t")
    service = CrlService(ca, settings)
    published = await service.generate(ISSUER)
    base = _by_scope(published)["full"]
    complete = check_crl(base.der, ca.issuers[ISSUER].certificate)
    freshest = complete.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert freshest[0].full_name[0].value == f"http://pki.example.com/crl/{ISSUER}/delta.crl"
    empty_delta = _by_scope(published, DELTA)["full"]
    assert empty_delta.entries == 0
    await ca.revoke(ISSUER, after.certificate.serial_number, "keyCompromise", requester="t")
    [delta] = await service.generate_deltas(ISSUER)
    crl = check_crl(_der(delta), ca.issuers[ISSUER].certificate, profile="pkix")
    indicator = crl.extensions.get_extension_for_class(x509.DeltaCRLIndicator)
    assert indicator.critical and indicator.value.crl_number == base.number
    assert [e.serial_number for e in crl] == [after.certificate.serial_number]
    assert _number(crl) > base.number and delta.next_update - delta.this_update == dt.timedelta(days=1)


async def test_schedule_with_a_frozen_clock(config: ServerConfig) -> None:
    """CRL-01: regenerated every interval (1 day here, nextUpdate 7 days), deltas every hour."""
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    ca = await build_ca(config, clock=clock)
    try:
        service = CrlService(ca, crl_settings(delta=True))
        await service.start()
        assert await service.due() == {ISSUER: COMPLETE}
        await service.generate(ISSUER)
        assert await service.due() == {}
        clock.advance(dt.timedelta(hours=1, seconds=1))
        assert await service.due() == {ISSUER: DELTA}
        await service.generate_deltas(ISSUER)
        clock.advance(dt.timedelta(hours=23))
        assert await service.due() == {ISSUER: COMPLETE}
    finally:
        await ca.close()


async def test_publish_directory_is_written_atomically(ca: CertificateAuthority, tmp_path: Path) -> None:
    """CRL-08: the file readers see is a whole CRL, replaced by rename; no temporary left over."""
    service = CrlService(ca, crl_settings(publish_dir=str(tmp_path), partitions=2, delta=True))
    published = await service.generate(ISSUER)
    assert (tmp_path / f"{ISSUER}.crl").read_bytes() == _by_scope(published)["full"].der
    assert (tmp_path / ISSUER / "1.crl").read_bytes() == _by_scope(published)["part-1"].der
    assert (tmp_path / ISSUER / "delta.crl").read_bytes() == _by_scope(published, DELTA)["full"].der
    assert not [p for p in tmp_path.rglob(".tmp-*")]


async def test_lint_gate_refuses_before_the_ca_key_signs(
    ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CRL-04 / docs/reliability.md, demand 2: a reason the BRs do not allow on a CRL
    (aACompromise) fails the BR lint of the throwaway-key twin; the CA key is never asked and nothing is published."""
    issued = await issue(ca)
    await ca.revoke(ISSUER, issued.certificate.serial_number, "aACompromise", requester="t")
    calls = []

    async def counting(*args: Any, **kwargs: Any) -> list[bytes]:
        calls.append(1)
        raise AssertionError("the CA key must not be asked")

    monkeypatch.setattr(crl_module, "sign_all", counting)
    with pytest.raises(CAError) as err:
        await CrlService(ca, crl_settings(lint="cabf")).generate(ISSUER)
    assert "lint" in err.value.detail and calls == []
    assert await CrlService(ca, crl_settings()).fetch(ISSUER, "full", COMPLETE) is None


@pytest.mark.slow
async def test_one_hundred_thousand_entries(ca: CertificateAuthority) -> None:
    """CRL-07: 100k revoked certificates, generated from the store within budget; the CRL
    parses with cryptography and `openssl crl`, and its sampled twin lints clean."""
    now = ca.clock.now()
    rows = [
        certificate_row(
            ISSUER,
            secrets.randbits(127) | 1 << 126,
            "revoked",
            now=now,
            revoked_at=now,
            reason=("keyCompromise", "superseded", None)[i % 3],
        )
        for i in range(100_000)
    ]
    await insert_rows(ca, rows)
    service = CrlService(ca, crl_settings())
    started = time.perf_counter()
    [full] = await service.generate(ISSUER)
    elapsed = time.perf_counter() - started
    assert full.entries == 100_000
    assert elapsed < 20, f"100k-entry CRL took {elapsed:.1f} s"
    crl = x509.load_der_x509_crl(_der(full))
    assert crl.is_signature_valid(ca.issuers[ISSUER].certificate.public_key())  # type: ignore[arg-type]
    assert len(crl) == 100_000
    if shutil.which("openssl"):
        out = subprocess.run(
            ["openssl", "crl", "-inform", "DER", "-noout", "-crlnumber"],
            input=full.der,
            capture_output=True,
            check=True,
        )
        assert int(out.stdout.strip().split(b"=0x")[1], 16) == full.number
