"""A new issuing-CA generation activated at a set time T while two `tetra serve` processes
issue on one PostgreSQL database (CAL-06).

The generation is made and scheduled by `tetra ca rollover` and `tetra ca activate --at T`
from a third process; neither server is told. Each server re-reads the registry every second
(server/jobs.py registry_tick), so both know T before it comes and change over by their own
clocks; a generation whose successor's time has come refuses to sign (ca/issuer.py), so a
request decided just before T is decided again under the new generation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.store.repositories import CertificateFilter
from server.wiring import build_ca, read_config
from tests.helpers import make_csr
from tests.integration.rollover_support import parent_key
from tests.integration.serverproc import ServerProcess

pytestmark = pytest.mark.slow


def _wait_for(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"{url} was not served within {timeout:.0f} s"
        time.sleep(0.2)


async def _issue_until(server: ServerProcess, prefix: str, stop_at: float, concurrency: int) -> list[int]:
    """Enrol through the API from ``concurrency`` workers until the loop clock reaches ``stop_at``."""
    base = server.base
    headers = {**server.auth, "Content-Type": "application/json"}
    statuses: list[int] = []
    loop = asyncio.get_running_loop()

    async def worker(session: aiohttp.ClientSession, w: int) -> None:
        n = 0
        while loop.time() < stop_at:
            csr, _ = make_csr([f"{prefix}{w}-{n}.example.com"])
            n += 1
            body = json.dumps({"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-client"})
            try:
                async with session.post(f"{base}/api/v1/enroll", data=body, headers=headers) as resp:
                    await resp.read()
                    statuses.append(resp.status)
            except aiohttp.ClientError:
                statuses.append(0)

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session, w) for w in range(concurrency)))
    return statuses


def test_two_servers_change_over_at_the_scheduled_time(ca_dir: Path, postgres_url: str, tmp_path: Path) -> None:
    """CAL-06: both processes issue from the old generation before T and from the new one after,
    every request succeeds, and the old generation signs nothing whose intent is from T on."""
    from ca.store.migrate import upgrade

    upgrade(postgres_url)
    config = ca_dir / "tetra.toml"
    servers = [ServerProcess(config, postgres_url, tmp_path / f"s{i}.log") for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        servers[0].cli("ca", "rollover", "issuing-ca", "--new-key", *parent_key(ca_dir))
        for server in servers:  # each has read the registry and opened the new generation's key
            _wait_for(f"{server.base}/ca/issuing-ca.2.cer")
        # A `tetra` command takes seconds on a loaded machine: T leaves room for it, and the
        # clients are already issuing while it runs.
        at = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=15)).replace(microsecond=0)

        async def both() -> list[list[int]]:
            stop_at = asyncio.get_running_loop().time() + (at - dt.datetime.now(dt.UTC)).total_seconds() + 5
            clients = [asyncio.create_task(_issue_until(s, f"s{i}-", stop_at, 4)) for i, s in enumerate(servers)]
            await asyncio.to_thread(servers[0].cli, "ca", "activate", "issuing-ca.2", "--at", at.isoformat())
            assert dt.datetime.now(dt.UTC) < at, "activate returned after T; the run cannot show the change-over"
            return list(await asyncio.gather(*clients))

        results = asyncio.run(both())
    finally:
        for server in servers:
            server.stop()
    assert all(status == 201 for statuses in results for status in statuses), results

    async def records() -> tuple[list[tuple[str, dt.datetime, bytes]], dict[str, x509.Certificate]]:
        authority = await build_ca(read_config(config, environ={"TETRA_DATABASE__URL": postgres_url}))
        try:
            rows = await authority.certificates.list(CertificateFilter(limit=100_000))
            cas = {name: authority.issuers[name].certificate for name in ("issuing-ca", "issuing-ca.2")}
            mine = [r for r in rows if r.status == "issued" and r.profile == "tls-client" and r.der is not None]
            return [(r.issuer, r.created_at, r.der) for r in mine if r.der is not None], cas
        finally:
            await authority.close()

    issued, cas = asyncio.run(records())
    old = [created for issuer, created, _ in issued if issuer == "issuing-ca"]
    new = [created for issuer, created, _ in issued if issuer == "issuing-ca.2"]
    assert old and new, f"{len(old)} before and {len(new)} after T: the run did not straddle T"
    assert max(old) < at, f"the old generation signed a certificate decided at {max(old)}, after {at}"
    assert min(new) >= at, f"the new generation issued at {min(new)}, before {at}"
    assert len(old) + len(new) == len(issued)
    for issuer, _, der in issued:  # each certificate is signed by the generation it is stored under
        x509.load_der_x509_certificate(der).verify_directly_issued_by(cas[issuer])
