"""Store faults under the issuing core, with the real stores and signers: a connection killed
mid-transaction (ST-05), a database that stops answering (ST-06), one insert that fails
(ST-07), an audit log that cannot be written (ST-11), and a backup restored (ST-16)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, EnrollmentRequest, Issued, Requester
from ca.errors import FailureReason, StoreUnavailable
from ca.service import CertificateAuthority
from ca.store.migrate import upgrade
from ca.store.repositories import CertificateFilter
from ca.store.tables import audit_log, certificates
from server.config import ServerConfig
from server.wiring import build_ca, read_config
from tests.helpers import GatedSigner, make_csr

pytestmark = pytest.mark.slow

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)
ISSUER = "issuing-ca"


def _request(name: str) -> EnrollmentRequest:
    csr, _ = make_csr([name])
    return enrollment_from_csr(csr, protocol="cli", profile_name="tls-client", requester=OPERATOR)


async def _counts(ca: CertificateAuthority) -> tuple[int, int]:
    """(certificate rows, audit events)."""

    def q(conn: Any) -> tuple[int, int]:
        rows = conn.execute(select(func.count()).select_from(certificates)).scalar_one()
        events = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
        return int(rows), int(events)

    return await ca.db.read(q)


def _assert_try_later(exc: object) -> None:
    """RELIABILITY 2.0 "clear error": the store's 'unavailable', nothing internal shown."""
    assert isinstance(exc, StoreUnavailable), repr(exc)
    assert exc.reason is FailureReason.UNAVAILABLE, exc
    assert exc.public_detail() == "the CA cannot process this request now; try again later"


@pytest.fixture
def pg_config(ca_dir: Path, postgres_url: str) -> ServerConfig:
    """The demo CA on a fresh, migrated PostgreSQL database (for faults only PostgreSQL can show)."""
    upgrade(postgres_url)
    return read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": postgres_url})


@asynccontextmanager
async def _authority(config: ServerConfig, **changes: Any) -> AsyncIterator[CertificateAuthority]:
    authority = await build_ca(replace(config, **changes))
    try:
        yield authority
    finally:
        await authority.close()


# -- ST-05: the connection dies mid-transaction -----------------------------------------


@contextmanager
def _audit_head_locked(url: str) -> Iterator[None]:
    """Another session holds the audit head's row lock: every write transaction of the CA
    stops inside itself (its rows inserted, its audit events not yet chained) until released."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        yield
        conn.rollback()


def _waiting_for_lock(url: str, killed: set[int]) -> list[int]:
    """CA connections of this database now waiting for a lock, except those already killed.
    (A fresh autocommit session each time: pg_stat_activity is a snapshot per transaction.)"""
    with psycopg.connect(url, autocommit=True) as watcher:
        rows = watcher.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND wait_event_type = 'Lock'"
        ).fetchall()
    return [pid for (pid,) in rows if pid not in killed]


async def _until_waiting(url: str, killed: set[int]) -> int:
    stop = time.monotonic() + 10
    while time.monotonic() < stop:
        waiting = _waiting_for_lock(url, killed)
        if waiting:
            return waiting[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no CA transaction is waiting for the audit head lock")


async def _kill_the_waiting_backend(url: str, killed: set[int]) -> None:
    """pg_terminate_backend on the CA connection now waiting for the lock (not one killed before)."""
    pid = await _until_waiting(url, killed)
    with psycopg.connect(url, autocommit=True) as killer:
        assert killer.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    killed.add(pid)


@pytest.mark.parametrize("kills", [1, 2])
@pytest.mark.parametrize("stage", ["intent", "result"])
@pytest.mark.parametrize("mode", ["async", "thread"])
async def test_connection_killed_mid_transaction(
    pg_config: ServerConfig, postgres_url: str, mode: str, stage: str, kills: int
) -> None:
    """ST-05: pg_terminate_backend on the CA's connection inside the intent transaction (its
    certificate row written, its audit event not) or inside the result transaction (status
    'issued' written, its audit event not). The transaction is rolled back: no half rows.
    Killed once, it is run again on a new connection and the issuance completes with one
    signature and no duplicate row or event. Killed on the retry too, the caller gets 'try
    later': killed in the intent, the signer was never called and nothing is stored; killed in
    the result, the intent stays a 'signing' row that can be revoked by serial. Either way the
    next issuance succeeds on the same CA object (no restart)."""
    async with _authority(pg_config, database_mode=mode) as ca:
        assert isinstance(await ca.enroll(_request("warm-up.example.com")), Issued)
        issuer = ca.issuers[ISSUER]
        gated = GatedSigner(issuer.signer)
        issuer.signer = gated
        rows, events = await _counts(ca)
        killed: set[int] = set()

        task = asyncio.create_task(ca.enroll(_request("killed.example.com")))
        if stage == "intent":
            gated.gate.set()
        else:
            await asyncio.wait_for(gated.entered.wait(), 10)
        with _audit_head_locked(postgres_url):
            gated.gate.set()
            for _ in range(kills):
                await _kill_the_waiting_backend(postgres_url, killed)
            if kills == 1:
                await _until_waiting(postgres_url, killed)  # the retry, on a new connection
        outcome = await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)

        if kills == 1:
            assert isinstance(outcome[0], Issued), outcome
            assert gated.runs == 1
            assert await _counts(ca) == (rows + 1, events + 2)  # intent + issued, once each
        elif stage == "intent":
            _assert_try_later(outcome[0])
            assert gated.runs == 0
            assert await _counts(ca) == (rows, events)
        else:
            _assert_try_later(outcome[0])
            assert gated.runs == 1
            assert await _counts(ca) == (rows + 1, events + 1)  # the intent and its audit event only
            [stuck] = await ca.certificates.list(CertificateFilter(status="signing"))
            assert stuck.der is None and stuck.issued_at is None and stuck.tbs
            revoked = await ca.revoke(ISSUER, stuck.serial, "superseded", requester="operator")
            assert revoked.status == "revoked"

        again = await ca.enroll(_request("after.example.com"))
        assert isinstance(again, Issued)
        assert (await ca.audit.verify()).ok


@pytest.mark.parametrize("mode", ["async", "thread"])
async def test_connections_closed_by_a_server_restart(pg_config: ServerConfig, postgres_url: str, mode: str) -> None:
    """ST-05: every pooled connection is closed by the server while idle (a restart or a
    failover). The next issuance does not fail on a stale connection: the first statement's
    failure is before COMMIT, so the transaction runs again on a new connection."""
    async with _authority(pg_config, database_mode=mode) as ca:
        warm = await asyncio.gather(*(ca.enroll(_request(f"warm{i}.example.com")) for i in range(8)))
        assert all(isinstance(w, Issued) for w in warm)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            (closed,) = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone() or (0,)
        assert closed >= 1
        for i in range(3):
            assert isinstance(await ca.enroll(_request(f"after{i}.example.com")), Issued)
        assert (await ca.audit.verify()).ok
