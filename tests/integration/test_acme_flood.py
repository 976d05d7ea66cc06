"""Floods against the real app over loopback HTTP (RELIABILITY §2.10): nonces never redeemed
(LOAD-04) and requests that are all refused (LOAD-05)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ca.service import CertificateAuthority
from protocols.acme.nonces import SWEEP_EVERY
from protocols.acme.state import nonces_t
from server.app import CA
from tests.unit.protocols.acme.support import AcmeEnv, start_env

pytest_plugins = ["tests.unit.protocols.acme.support"]

NONCE_CAP = 300
NONCE_POOL = 64  # [acme] nonce_pool default
NONCE_BOUND = NONCE_CAP + SWEEP_EVERY + 3 * NONCE_POOL  # as in tests/unit/protocols/acme/test_nonce_store.py


async def row_count(ca: CertificateAuthority, table: Any) -> int:
    def q(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    return await ca.db.read(q)


async def in_waves(total: int, one: Callable[[int], Awaitable[None]], width: int = 32) -> None:
    """`total` calls of `one`, `width` at a time (a client with that many connections)."""
    for start in range(0, total, width):
        await asyncio.gather(*(one(i) for i in range(start, min(total, start + width))))


async def flood_env(aiohttp_client: Any, ca_dir: Path, loopback: Any) -> AcmeEnv:
    return await start_env(
        aiohttp_client,
        ca_dir,
        f"sqlite:///{ca_dir / 'tetra.db'}",
        loopback,
        {"TETRA_ACME__MAX_NONCES": str(NONCE_CAP)},
    )


async def test_head_new_nonce_flood_keeps_the_nonce_table_bounded(
    aiohttp_client: Any, ca_dir: Path, loopback: Any
) -> None:
    """LOAD-04 over HTTP: 5,000 HEAD newNonce never redeemed keep the table within the cap plus
    one sweep interval; the oldest nonce was dropped (badNonce, with a fresh nonce that works),
    while one handed out late is still in the table and accepted."""
    env = await flood_env(aiohttp_client, ca_dir, loopback)
    ca: CertificateAuthority = env.app[CA]
    client = env.client()
    assert (await client.register()).status == 201
    oldest = await client.fresh_nonce()
    peak = 0

    async def head(i: int) -> None:
        nonlocal peak
        resp = await env.http.head("/acme/new-nonce")
        assert resp.status == 200 and len(resp.headers["Replay-Nonce"]) == 22
        if i % 200 == 0:
            peak = max(peak, await row_count(ca, nonces_t))

    await in_waves(5000, head)
    assert NONCE_CAP < peak <= NONCE_BOUND, peak
    recent = await client.fresh_nonce()
    url = client.kid or ""
    swept = await client.post(url, None, nonce=oldest, retry_bad_nonce=False)
    assert swept.status == 400 and swept.problem_type == "badNonce"
    assert (await client.post(url, None, nonce=swept.headers["Replay-Nonce"])).status == 200
    assert (await client.post(url, None, nonce=recent)).status == 200
    assert await row_count(ca, nonces_t) <= NONCE_BOUND
