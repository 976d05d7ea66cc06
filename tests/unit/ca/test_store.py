"""The store under both execution modes (asyncio drivers and worker threads) and both databases."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import replace

import pytest

from ca import issuer as issuer_module
from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Issued, Requester
from ca.errors import CAError, FailureReason, SignerUnavailable
from ca.service import CertificateAuthority
from ca.sigalg import sign_bytes
from ca.store.repositories import CertificateFilter
from server.config import ServerConfig
from server.wiring import build_ca
from tests.helpers import CountingSigner, enroll, make_csr

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)


def _request(name: str = "www.example.com"):  # type: ignore[no-untyped-def]
    csr, _ = make_csr([name])
    return enrollment_from_csr(csr, protocol="cli", profile_name="tls-client", requester=OPERATOR)


@pytest.fixture
async def mode_ca(config: ServerConfig, db_mode: str):  # type: ignore[no-untyped-def]
    authority = await build_ca(replace(config, database_mode=db_mode))
    try:
        yield authority
    finally:
        await authority.close()


async def test_concurrent_issuance_shares_commits_and_loses_nothing(mode_ca: CertificateAuthority) -> None:
    """64 concurrent issuances: all stored, distinct serials, audit chain contiguous (ST-15 within a process)."""
    before = len(await mode_ca.certificates.list(CertificateFilter(limit=100_000)))
    outcomes = await asyncio.gather(*(enroll(mode_ca, _request(f"h{i}.example.com")) for i in range(64)))
    serials = {o.certificate.serial_number for o in outcomes if isinstance(o, Issued)}
    assert len(serials) == 64
    records = await mode_ca.certificates.list(CertificateFilter(limit=100_000))
    assert len(records) == before + 64
    assert all(r.status == "issued" and r.der for r in records)
    report = await mode_ca.audit.verify()
    assert report.ok, report.problems
    assert report.events >= 128  # intent + issued per certificate


async def test_serial_collision_draws_again(mode_ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    """CORE-02: a repeated serial is refused by the unique constraint; a new one is drawn, nothing signed twice."""
    first = await enroll(mode_ca, _request("a.example.com"))
    assert isinstance(first, Issued)
    taken = first.certificate.serial_number
    draws = iter([taken, taken, secrets.randbits(120) | 1 << 119])
    monkeypatch.setattr(issuer_module, "new_serial", lambda: next(draws))
    issuer = mode_ca.issuers[mode_ca.default_issuer]
    attempts = issuer.signing_attempts
    second = await enroll(mode_ca, _request("b.example.com"))
    assert isinstance(second, Issued)
    assert second.certificate.serial_number != taken
    assert issuer.signing_attempts == attempts + 1  # the collided serials were never signed


async def test_corrupted_signature_is_withheld(mode_ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch) -> None:
    """CORE-11: a backend returning a bad signature releases nothing; the intent row is marked failed.
    (The signer double does not verify its own signatures, so the issuer must.)"""

    def corrupt(key, data, hash_alg):  # type: ignore[no-untyped-def]
        signature = bytearray(sign_bytes(key, data, hash_alg))
        signature[-1] ^= 0x01
        return bytes(signature)

    issuer = mode_ca.issuers[mode_ca.default_issuer]
    issuer.signer = CountingSigner(issuer.signer)
    monkeypatch.setattr(issuer_module, "sign_bytes", corrupt)
    with pytest.raises(SignerUnavailable):
        await enroll(mode_ca, _request("c.example.com"))
    failed = await mode_ca.certificates.list(CertificateFilter(status="failed"))
    assert len(failed) == 1 and failed[0].der is None and failed[0].tbs
    assert (await mode_ca.audit.verify()).ok


async def test_signer_exception_marks_intent_failed(
    mode_ca: CertificateAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_a: object) -> bytes:
        raise RuntimeError("device error")

    monkeypatch.setattr(issuer_module, "sign_bytes", broken)
    with pytest.raises(CAError) as err:
        await enroll(mode_ca, _request("d.example.com"))
    assert err.value.reason is FailureReason.UNAVAILABLE
    assert "device error" not in err.value.public_detail()
    assert [r.status for r in await mode_ca.certificates.list(CertificateFilter(status="failed"))] == ["failed"]


async def test_database_unreachable_is_unavailable(ca_dir, config: ServerConfig) -> None:  # type: ignore[no-untyped-def]
    """ST-04: a database that cannot be reached gives 'try later', nothing is signed."""
    unreachable = replace(config, database_url="postgresql://postgres@127.0.0.1:1/none", database_timeout=5)
    authority = await build_ca(unreachable)
    issuer = authority.issuers[authority.default_issuer]
    try:
        with pytest.raises(CAError) as err:
            await enroll(authority, _request("e.example.com"))
        assert err.value.reason is FailureReason.UNAVAILABLE
        assert issuer.signing_attempts == 0
    finally:
        await authority.close()


async def test_counter_created_by_two_processes_at_once_never_repeats(config: ServerConfig) -> None:
    """CRL-02: CRL numbers come from a shared counter; two stores (two processes' connection
    pools) creating and bumping the same counters at the same moment get distinct, increasing
    numbers and no integrity error."""
    from ca.store.repositories import CounterRepository
    from server.wiring import open_database

    first, second = open_database(config), open_database(config)
    try:
        names = [f"race-{secrets.token_hex(4)}" for _ in range(10)]

        async def take(db, name: str) -> int:  # type: ignore[no-untyped-def]
            return int(await db.write(lambda tx: CounterRepository.next_value(tx, name, at_least=5)))

        for name in names:
            values = await asyncio.gather(*(take(db, name) for db in (first, second) for _ in range(3)))
            assert sorted(values) == [5, 6, 7, 8, 9, 10], values
        floor = await first.write(lambda tx: CounterRepository.next_value(tx, names[0], at_least=100))
        assert floor == 100  # a higher floor (time-based CRL numbers) wins over +1
    finally:
        await first.close()
        await second.close()


async def test_first_audit_events_from_two_processes_at_once(config: ServerConfig) -> None:
    """ST-15 / audit chain: on a fresh database, two processes (two connection pools) writing
    their first events at the same moment both succeed and leave one intact chain; the second
    waits for the first's head row instead of failing on a duplicate key."""
    from ca.audit import AuditEvent, verify_chain
    from server.wiring import open_database

    first, second = open_database(config), open_database(config)
    try:
        before = (await first.read(verify_chain)).events

        async def write(db, n: int) -> None:  # type: ignore[no-untyped-def]
            await db.write(lambda tx: tx.audit(AuditEvent("test", "race", f"e{n}", {})))

        await asyncio.gather(*(write(db, n) for n in range(6) for db in (first, second)))
        report = await first.read(verify_chain)
        assert report.ok, report.problems
        assert report.events == before + 12
    finally:
        await first.close()
        await second.close()


async def test_deadlock_between_two_processes_is_retried(postgres_url: str) -> None:
    """A write transaction that PostgreSQL aborts to break a deadlock (two processes locking the
    same rows in opposite orders, as grouped commits of unrelated requests can) is run again
    instead of failing the request; both writes land exactly once."""
    import threading

    from ca.store.db import Database
    from ca.store.migrate import upgrade
    from ca.store.repositories import CounterRepository

    upgrade(postgres_url)  # (SQLite has one writer at a time: no deadlocks to break)
    first = Database(postgres_url, mode="thread")
    second = Database(postgres_url, mode="thread")
    a, b = f"dl-a-{secrets.token_hex(3)}", f"dl-b-{secrets.token_hex(3)}"
    both_hold_one = threading.Barrier(2, timeout=5)
    try:
        await first.write(lambda tx: (CounterRepository.next_value(tx, a), CounterRepository.next_value(tx, b)))

        def locker(x: str, y: str):  # type: ignore[no-untyped-def]
            attempts = []

            def fn(tx):  # type: ignore[no-untyped-def]
                attempts.append(1)
                CounterRepository.next_value(tx, x)
                if len(attempts) == 1:
                    both_hold_one.wait()  # each holds its first row before asking for the other's
                return CounterRepository.next_value(tx, y)

            return fn

        results = await asyncio.gather(first.write(locker(a, b)), second.write(locker(b, a)))
        assert sorted(results) == [2, 3], results  # the victim ran again after the winner
        final = await first.write(lambda tx: (CounterRepository.next_value(tx, a), CounterRepository.next_value(tx, b)))
        assert final == (4, 4)  # each counter was bumped exactly once by each writer
    finally:
        await first.close()
        await second.close()
