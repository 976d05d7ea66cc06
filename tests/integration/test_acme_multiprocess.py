"""ACME across two `tetra serve` processes on one PostgreSQL database: shared rate limits
(ACME-25) and revocation seen by the other process's OCSP responder within a second (issue 4)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ca.store.migrate import upgrade
from interop.acme_helpers import Http01Responder, LoopbackDns
from protocols.acme.b64 import b64e
from server.wiring import build_ca, read_config
from tests.conftest import lint_everything_issued
from tests.integration.serverproc import ServerProcess
from tests.revocation_support import check_ocsp, request_der
from tests.unit.protocols.acme.support import BASE, AcmeClient, AcmeEnv

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.unit.protocols.acme.support"]  # the loopback fixture

PUBLIC_HTTPS = BASE.removesuffix("/acme")  # the URLs both processes put in ACME resources


def start_pair(
    ca_dir: Path, db_url: str, tmp_path: Path, loopback: tuple[LoopbackDns, Http01Responder], env: dict[str, str]
) -> list[ServerProcess]:
    dns_server, responder = loopback
    upgrade(db_url)
    extra = {
        "TETRA_SERVER__PROTOCOLS": '["acme", "ocsp"]',
        "TETRA_SERVER__HTTPS_URL": PUBLIC_HTTPS,
        "TETRA_ACME__VALIDATION__HTTP_PORT": str(responder.port),
        "TETRA_ACME__VALIDATION__RESOLVER": dns_server.address,
        "TETRA_ACME__VALIDATION__TIMEOUT": "3",
        **env,
    }
    servers = [ServerProcess(ca_dir / "tetra.toml", db_url, tmp_path / f"s{i}.log", extra) for i in range(2)]
    try:
        for server in servers:
            server.wait_ready()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


@asynccontextmanager
async def acme_session(server: ServerProcess) -> AsyncIterator[Any]:
    """An aiohttp session on the server's plain-HTTP listener, in place of the test client."""
    async with aiohttp.ClientSession(base_url=server.base, timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def registered(http: Any) -> AcmeClient:
    client = AcmeClient(http)
    resp = await client.register()
    assert resp.status == 201, resp.body
    return client


def test_rate_limits_are_shared_by_two_processes(
    ca_dir: Path, postgres_url: str, tmp_path: Path, loopback: tuple[LoopbackDns, Http01Responder]
) -> None:
    """ACME-25: one account ordering through both processes at once gets exactly its limit."""
    servers = start_pair(ca_dir, postgres_url, tmp_path, loopback, {"TETRA_ACME__RATE_LIMITS__ORDERS_PER_ACCOUNT": "6"})
    try:

        async def run() -> list[int]:
            async with acme_session(servers[0]) as a, acme_session(servers[1]) as b:
                first = await registered(a)
                clients = []
                for http in (a, b) * 5:
                    client = AcmeClient(http, key=first.key, kid=first.kid)
                    await client.load_directory()
                    clients.append(client)
                responses = await asyncio.gather(
                    *(c.new_order([f"n{i}.shared{i}.example"]) for i, c in enumerate(clients))
                )
                return [r.status for r in responses]

        statuses = asyncio.run(run())
    finally:
        for server in servers:
            server.stop()
    assert sorted(statuses) == [201] * 6 + [429] * 4, statuses


def test_acme_revocation_visible_in_other_process_ocsp_within_a_second(
    ca_dir: Path, postgres_url: str, tmp_path: Path, loopback: tuple[LoopbackDns, Http01Responder]
) -> None:
    """Issue 4: revokeCert answered by process A; process B's OCSP says revoked within 1 s."""
    servers = start_pair(ca_dir, postgres_url, tmp_path, loopback, {"TETRA_OCSP__RESPONDER_COUNTRY": "US"})
    env = AcmeEnv(loopback[0], loopback[1], ca_dir)
    try:

        async def run() -> float:
            async with acme_session(servers[0]) as a, aiohttp.ClientSession(base_url=servers[1].base) as b:
                client = await registered(a)
                env.http = a
                _, chain_pem, _ = await client.issue(env, ["revoke.mp.example.com"])
                cert, issuer = x509.load_pem_x509_certificates(chain_pem.encode())[:2]
                der = request_der(cert, issuer)

                async def status_from_b() -> ocsp.OCSPResponse:
                    headers = {"Content-Type": "application/ocsp-request"}
                    async with b.post("/ocsp", data=der, headers=headers) as resp:
                        assert resp.status == 200
                        body = await resp.read()
                    return check_ocsp(body, issuer)

                assert (await status_from_b()).certificate_status == ocsp.OCSPCertStatus.GOOD  # now cached
                resp = await client.post(
                    client.directory["revokeCert"], {"certificate": b64e(cert.public_bytes(Encoding.DER)), "reason": 1}
                )
                assert resp.status == 200, resp.body
                answered = time.monotonic()
                while (await status_from_b()).certificate_status != ocsp.OCSPCertStatus.REVOKED:
                    assert time.monotonic() - answered < 1.0, "revocation not visible in B's OCSP within 1 s"
                    await asyncio.sleep(0.02)
                return time.monotonic() - answered

        assert asyncio.run(run()) < 1.0
    finally:
        for server in servers:
            server.stop()

    async def lint() -> None:
        authority = await build_ca(read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": postgres_url}))
        try:
            await lint_everything_issued(authority)
        finally:
            await authority.close()

    asyncio.run(lint())
