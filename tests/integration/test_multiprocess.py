"""Several `tetra serve` processes on one database, and kill -9 in the middle of a burst (ST-01, ST-15)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.sigalg import verify_bytes
from ca.store.repositories import CertificateFilter
from server.wiring import build_ca, read_config
from tests.helpers import make_csr
from tests.integration.serverproc import ServerProcess

pytestmark = pytest.mark.slow


def _csr_bodies(count: int, prefix: str) -> list[bytes]:
    bodies = []
    for i in range(count):
        csr, _ = make_csr([f"{prefix}{i}.example.com"])
        bodies.append(json.dumps({"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-client"}).encode())
    return bodies


async def _burst(server: ServerProcess, bodies: list[bytes], concurrency: int) -> list[int]:
    """POST every body; returns HTTP statuses (connection errors count as 0)."""
    base = server.base
    headers = {**server.auth, "Content-Type": "application/json"}
    queue = list(bodies)
    statuses: list[int] = []

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            body = queue.pop()
            try:
                async with session.post(f"{base}/api/v1/enroll", data=body, headers=headers) as resp:
                    await resp.read()
                    statuses.append(resp.status)
            except aiohttp.ClientError:
                statuses.append(0)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return statuses


async def _check_store(ca_dir: Path, db_url: str) -> dict[str, int]:
    """Consistency after any crash: every signed row verifies; statuses are known; audit chain intact."""
    authority = await build_ca(read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": db_url}))
    try:
        records = await authority.certificates.list(CertificateFilter(limit=100_000))
        counts: dict[str, int] = {}
        serials = set()
        for rec in records:
            counts[rec.status] = counts.get(rec.status, 0) + 1
            assert rec.status in ("signing", "issued", "failed", "revoked")
            assert (rec.issuer, rec.serial) not in serials
            serials.add((rec.issuer, rec.serial))
            assert rec.tbs, "an intent row without its TBS"
            if rec.status == "issued":
                assert rec.der is not None
                cert = x509.load_der_x509_certificate(rec.der)
                issuer = authority.issuers[rec.issuer]
                assert cert.tbs_certificate_bytes == rec.tbs
                assert verify_bytes(
                    issuer.signer.public_key(),
                    cert.signature,
                    cert.tbs_certificate_bytes,
                    cert.signature_hash_algorithm,
                )
        report = await authority.audit.verify()
        assert report.ok, report.problems
        return counts
    finally:
        await authority.close()


def test_two_servers_share_one_postgresql(ca_dir: Path, postgres_url: str, tmp_path: Path) -> None:
    """ST-15: two processes issue concurrently into one database; no duplicate serial, nothing lost."""
    from ca.store.migrate import upgrade

    upgrade(postgres_url)
    config = ca_dir / "tetra.toml"
    servers = [ServerProcess(config, postgres_url, tmp_path / f"s{i}.log") for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()

        async def both() -> list[list[int]]:
            return list(
                await asyncio.gather(
                    _burst(servers[0], _csr_bodies(60, "a"), 8),
                    _burst(servers[1], _csr_bodies(60, "b"), 8),
                )
            )

        results = asyncio.run(both())
    finally:
        for server in servers:
            server.stop()
    assert all(status == 201 for statuses in results for status in statuses), results
    counts = asyncio.run(_check_store(ca_dir, postgres_url))
    assert counts.get("issued", 0) == 120
    assert counts.get("signing", 0) == 0


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_during_burst_then_restart(
    ca_dir: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Kill -9 a serving process mid-burst; after restart the store is consistent and issuance resumes."""
    if backend == "sqlite":
        db_url = f"sqlite:///{ca_dir / 'tetra.db'}"
    else:
        from ca.store.migrate import upgrade

        db_url = request.getfixturevalue("postgres_url")
        upgrade(db_url)
    config = ca_dir / "tetra.toml"
    server = ServerProcess(config, db_url, tmp_path / "first.log")
    server.wait_ready()

    async def burst_and_kill() -> None:
        task = asyncio.create_task(_burst(server, _csr_bodies(400, "k"), 16))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            issued = await _count_issued(ca_dir, db_url)
            if issued >= 30:
                break
        server.kill()  # SIGKILL mid-burst
        await task

    asyncio.run(burst_and_kill())
    before = asyncio.run(_check_store(ca_dir, db_url))
    assert before.get("issued", 0) >= 30
    print(f"after kill -9: {before}")
    assert before.get("issued", 0) < 400 + 2, "the burst should have been interrupted"

    again = ServerProcess(config, db_url, tmp_path / "second.log")
    try:
        again.wait_ready()
        statuses = asyncio.run(_burst(again, _csr_bodies(20, "r"), 4))
    finally:
        again.stop()
    assert statuses == [201] * 20
    after = asyncio.run(_check_store(ca_dir, db_url))
    assert after.get("issued", 0) == before.get("issued", 0) + 20


async def _count_issued(ca_dir: Path, db_url: str) -> int:
    from sqlalchemy import func, select

    from ca.store.db import Database
    from ca.store.tables import certificates

    db = Database(db_url, mode="async")
    try:
        return int(
            await db.read(
                lambda c: c.execute(
                    select(func.count()).select_from(certificates).where(certificates.c.status == "issued")
                ).scalar_one()
            )
        )
    finally:
        await db.close()


@pytest.mark.parametrize("point", ["F2", "F3"])
def test_kill_at_fault_point_leaves_a_revocable_intent(ca_dir: Path, tmp_path: Path, point: str) -> None:
    """ST-01: killed after the intent (F2) or after signing (F3): the row exists with its TBS and can be revoked."""
    db_url = f"sqlite:///{ca_dir / 'tetra.db'}"
    config = ca_dir / "tetra.toml"
    server = ServerProcess(config, db_url, tmp_path / "fault.log", extra_env={"TETRA_FAULT_POINT": point})
    server.wait_ready()

    async def one() -> None:
        task = asyncio.create_task(_burst(server, _csr_bodies(1, "f"), 1))
        deadline = time.monotonic() + 30
        while f"TETRA-FAULT-POINT {point}" not in server.log_path.read_text():
            assert time.monotonic() < deadline, server.log_path.read_text()
            await asyncio.sleep(0.05)
        server.kill()
        await task

    asyncio.run(one())
    counts = asyncio.run(_check_store(ca_dir, db_url))
    assert counts.get("signing") == 1

    async def revoke_intent() -> None:
        authority = await build_ca(read_config(config, environ={"TETRA_DATABASE__URL": db_url}))
        try:
            stuck = await authority.certificates.list(CertificateFilter(status="signing"))
            assert len(stuck) == 1
            revoked = await authority.revoke(stuck[0].issuer, stuck[0].serial, "superseded", requester="operator")
            assert revoked.status == "revoked"
        finally:
            await authority.close()

    asyncio.run(revoke_intent())
    os.environ.pop("TETRA_FAULT_POINT", None)
