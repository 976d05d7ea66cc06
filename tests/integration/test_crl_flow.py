"""CRL publication through the whole server (pytest-aiohttp), on SQLite and PostgreSQL: the
URLs certificates carry, batched regeneration after a revocation, partitions, deltas, bad
paths, and one leader among several processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select

from ca.clock import FrozenClock
from ca.revocation.crl import CrlService
from ca.revocation.ocsp import OcspService
from ca.revocation.tables import crls
from server.app import build_app
from server.config import ServerConfig
from server.jobs import RevocationJobs
from server.wiring import build_ca, read_config
from tests.helpers import make_csr
from tests.integration.operator_api import MANAGE_ON_HTTP, serve_on_http
from tests.revocation_support import check_crl, crl_settings, ocsp_settings

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
BATCH_DELAY = 1.0


@pytest.fixture
def crl_config(ca_dir: Path, db_url: str) -> ServerConfig:
    return read_config(
        ca_dir / "tetra.toml",
        environ={
            "TETRA_DATABASE__URL": db_url,
            "TETRA_SERVER__PROTOCOLS": '["ocsp","crl"]',
            **MANAGE_ON_HTTP,
            "TETRA_OCSP__RESPONDER_COUNTRY": "US",
            "TETRA_CRL__BATCH_DELAY": f"{BATCH_DELAY}s",
            "TETRA_CRL__PARTITIONS": "4",
            "TETRA_CRL__DELTA": "true",
            "TETRA_CRL__LINT": "cabf",
        },
    )


async def _issue(
    client: TestClient[Any, Any], auth: dict[str, str], name: str
) -> tuple[x509.Certificate, x509.Certificate]:
    csr, _ = make_csr([name])
    resp = await client.post(
        "/api/v1/enroll", headers=auth, json={"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server"}
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    chain = x509.load_pem_x509_certificates(body["chain"].encode())
    return x509.load_pem_x509_certificate(body["certificate"].encode()), chain[0]


async def _fetch(client: TestClient[Any, Any], url: str) -> x509.CertificateRevocationList:
    resp = await client.get(urlsplit(url).path)
    assert resp.status == 200, (url, resp.status, await resp.text())
    assert resp.headers["Content-Type"] == "application/pkix-crl"
    return x509.load_der_x509_crl(await resp.read())


def _urls(cert: x509.Certificate) -> tuple[str, str]:
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    fresh = cert.extensions.get_extension_for_class(x509.FreshestCRL).value
    return str(cdp[0].full_name[0].value), str(fresh[0].full_name[0].value)


async def test_published_at_the_urls_certificates_carry(aiohttp_client: Client, crl_config: ServerConfig) -> None:
    """CRL-01, CRL-06, CRL-09: the leader publishes at start-up; the full CRL, the partition
    named in the certificate's CRL DP and the delta named in its Freshest CRL are served as
    DER application/pkix-crl with caching headers, and lint clean."""
    client, auth = await serve_on_http(aiohttp_client, build_app(crl_config))
    cert, issuer = await _issue(client, auth, "crl.example.com")
    partition_url, delta_url = _urls(cert)
    assert partition_url == f"http://pki.example.com/crl/issuing-ca/{cert.serial_number % 4}.crl"
    resp = await client.get("/crl/issuing-ca.crl")
    assert resp.status == 200
    assert "max-age=" in resp.headers["Cache-Control"] and resp.headers["ETag"].startswith('"')
    check_crl(await resp.read(), issuer)
    assert (await client.get("/crl/issuing-ca.crl", headers={"If-None-Match": resp.headers["ETag"]})).status == 304
    partition = await _fetch(client, partition_url)
    check_crl(partition.public_bytes(Encoding.DER), issuer)
    delta = await _fetch(client, delta_url)
    check_crl(delta.public_bytes(Encoding.DER), issuer, profile="pkix")
    assert delta.extensions.get_extension_for_class(x509.DeltaCRLIndicator).value.crl_number == (
        partition.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    )
    await _fetch(client, "/crl/issuing-ca/delta.crl")


async def test_revocation_reaches_the_crl_within_the_batching_delay(
    aiohttp_client: Client, crl_config: ServerConfig
) -> None:
    """CRL-01: regenerated soon after a revocation, batched: several revocations in a burst
    give one regeneration, out within the batching delay (plus a poll interval)."""
    client, auth = await serve_on_http(aiohttp_client, build_app(crl_config))
    certs = [await _issue(client, auth, f"b{i}.example.com") for i in range(3)]
    issuer = certs[0][1]
    started = time.monotonic()
    for cert, _ in certs:
        resp = await client.post(
            "/api/v1/revoke", headers=auth, json={"serial": format(cert.serial_number, "x"), "reason": "keyCompromise"}
        )
        assert resp.status == 200
    wanted = {c.serial_number for c, _ in certs}
    while True:
        delta = await _fetch(client, "/crl/issuing-ca/delta.crl")
        if wanted <= {e.serial_number for e in delta}:
            break
        assert time.monotonic() - started < BATCH_DELAY + 0.5, "revocation not in the delta CRL in time"
        await asyncio.sleep(0.05)
    check_crl(delta.public_bytes(Encoding.DER), issuer, profile="pkix")
    partition_url, _ = _urls(certs[0][0])
    other = await build_ca(crl_config)
    try:
        # A complete regeneration (scheduled, or `tetra crl generate`) lists them all too.
        await CrlService(other, crl_settings(partitions=4, delta=True)).generate("issuing-ca")
    finally:
        await other.close()
    await asyncio.sleep(1.1)  # served CRLs are re-checked in the store once a second
    full = await _fetch(client, "/crl/issuing-ca.crl")
    assert wanted <= {e.serial_number for e in full}
    partition = await _fetch(client, partition_url)
    assert certs[0][0].serial_number in {e.serial_number for e in partition}


async def test_bad_crl_paths(aiohttp_client: Client, crl_config: ServerConfig) -> None:
    """Unknown CA in /crl/, an unknown partition, and names that are not CRLs: 404."""
    client = await aiohttp_client(build_app(crl_config))
    for path in (
        "/crl/nope.crl",
        "/crl/nope/delta.crl",
        "/crl/issuing-ca/9.crl",
        "/crl/issuing-ca/x.crl",
        "/crl/issuing-ca.pem",
        "/crl/../etc/passwd",
        "/crl/issuing-ca/1/2.crl",
    ):
        resp = await client.get(path)
        assert resp.status == 404, path


async def test_one_leader_among_processes(config: ServerConfig) -> None:
    """ST-15: two processes on one store: exactly one holds the lease and regenerates; when
    its lease runs out the other takes over; CRL numbers stay unique."""
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    settings = crl_settings()
    cas = [await build_ca(config, clock=clock) for _ in range(2)]
    jobs = [
        RevocationJobs(ca, settings, OcspService(ca, ocsp_settings()), CrlService(ca, settings), holder=f"process-{i}")
        for i, ca in enumerate(cas)
    ]
    try:
        for job in jobs:
            await job.start(background=False)
        assert [j.leader for j in jobs] == [True, False]
        for job in jobs:
            await job.maintenance_tick()
            for task in list(job._running.values()):
                await task

        def count(conn: Any) -> int:
            return int(
                conn.execute(select(func.count()).select_from(crls).where(crls.c.status == "published")).scalar_one()
            )

        assert await cas[0].db.read(count) == 1  # one full CRL, by the leader only
        clock.advance(settings.lease + dt.timedelta(seconds=1))
        await jobs[1].lease_tick()
        await jobs[0].lease_tick()
        assert [j.leader for j in jobs] == [False, True]
    finally:
        for job in jobs:
            await job.stop()
            if job.ocsp is not None:
                await job.ocsp.close()
        for ca in cas:
            await ca.close()
