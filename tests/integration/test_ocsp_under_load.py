"""OCSP-03: every certificate issued under concurrent load, by either of two `tetra serve`
processes sharing one PostgreSQL database, gets an authoritative answer (good, signed, never
unknown) from both processes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from tests.helpers import make_csr
from tests.integration.serverproc import ServerProcess
from tests.revocation_support import check_ocsp, request_der

pytestmark = pytest.mark.slow

COUNT = 120


async def _enroll_all(
    servers: list[ServerProcess], count: int, concurrency: int = 16
) -> list[tuple[x509.Certificate, x509.Certificate]]:
    bodies = []
    for i in range(count):
        csr, _ = make_csr([f"load{i}.example.com"])
        bodies.append(json.dumps({"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server"}))
    issued: list[tuple[x509.Certificate, x509.Certificate]] = []
    headers = [{**server.auth, "Content-Type": "application/json"} for server in servers]

    async def worker(session: aiohttp.ClientSession, index: int) -> None:
        while bodies:
            body = bodies.pop()
            server = index % len(servers)
            async with session.post(
                f"{servers[server].base}/api/v1/enroll", data=body, headers=headers[server]
            ) as resp:
                assert resp.status == 201, await resp.text()
                answer = await resp.json()
            leaf = x509.load_pem_x509_certificate(answer["certificate"].encode())
            issued.append((leaf, x509.load_pem_x509_certificates(answer["chain"].encode())[0]))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(worker(session, i) for i in range(concurrency)))
    return issued


async def test_every_certificate_issued_under_load_is_answered_by_every_process(
    ca_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    from ca.store.migrate import upgrade

    upgrade(postgres_url)
    env = {"TETRA_SERVER__PROTOCOLS": '["ocsp"]', "TETRA_OCSP__RESPONDER_COUNTRY": "US"}
    servers = [ServerProcess(ca_dir / "tetra.toml", postgres_url, tmp_path / f"s{i}.log", env) for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()
        bases = [s.base for s in servers]
        issued = await _enroll_all(servers, COUNT)
        assert len({leaf.serial_number for leaf, _ in issued}) == COUNT
        async with aiohttp.ClientSession() as session:
            for base in bases:
                for leaf, issuer in issued:
                    body = request_der(leaf, issuer)
                    headers = {"Content-Type": "application/ocsp-request"}
                    async with session.post(f"{base}/ocsp", data=body, headers=headers) as resp:
                        assert resp.status == 200
                        der = await resp.read()
                    response = check_ocsp(der, issuer)
                    assert response.serial_number == leaf.serial_number
                    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD, (base, leaf.serial_number)
    finally:
        for server in servers:
            server.stop()
