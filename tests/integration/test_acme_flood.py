"""Floods against the real app over loopback HTTP (docs/reliability.md, Load): nonces never redeemed
(LOAD-04) and requests that are all refused (LOAD-05)."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import json
import logging
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ca.clock import FrozenClock
from ca.service import CertificateAuthority
from ca.store.tables import audit_log, certificates, credentials, rate_limits
from protocols.acme.b64 import b64e
from protocols.acme.jws import sign_jws
from protocols.acme.nonces import SWEEP_EVERY
from protocols.acme.store.tables import accounts_t, authzs_t, challenges_t, nonces_t, orders_t
from server.app import CA
from tests.helpers import CountingSigner
from tests.unit.protocols.acme.support import AcmeClient, AcmeEnv, make_csr, start_env

pytest_plugins = ["tests.unit.protocols.acme.support"]

NONCE_CAP = 300
NONCE_POOL = 64  # [acme] nonce_pool default
NONCE_BOUND = NONCE_CAP + SWEEP_EVERY + 3 * NONCE_POOL  # as in tests/unit/protocols/acme/test_nonce_store.py


async def row_count(ca: CertificateAuthority, table: Any) -> int:
    def q(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    return await ca.db.read(q)


async def contents(ca: CertificateAuthority, tables: list[Any]) -> list[list[tuple[Any, ...]]]:
    """Every row of the given (small) tables: a refused request must neither add nor change one."""

    def q(conn: Connection) -> list[list[tuple[Any, ...]]]:
        return [sorted(tuple(r) for r in conn.execute(select(t))) for t in tables]

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
        # Every refused request processed in full: the per-source brake is tested on its own below.
        {"TETRA_ACME__MAX_NONCES": str(NONCE_CAP), "TETRA_ACME__RATE_LIMITS__REFUSALS_PER_MINUTE": "0"},
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


UNTRACED = SWEEP_EVERY + 100
WARM_UP = 200
FLOOD = 800  # traced: tracemalloc makes each request ~3x slower
MEMORY_BOUND = 256 * 1024  # bytes still allocated after the flood that were not before it (~300 per request)


async def test_refused_request_flood_writes_nothing_signs_nothing_and_keeps_memory_flat(
    aiohttp_client: Any, ca_dir: Path, loopback: Any
) -> None:
    """LOAD-05: thousands of refused requests (broken JSON, forged signatures, unknown nonces,
    accounts and algorithms, wrong content type, another account's or a malformed challenge
    response, finalize before ready): each reply is an ACME problem document with a fresh nonce;
    no row is added or changed anywhere but in the bounded nonce table; the CA key never signs;
    after a warm-up, the Python heap of the app (and of this client) stays within 256 KiB."""
    env = await flood_env(aiohttp_client, ca_dir, loopback)
    ca: CertificateAuthority = env.app[CA]
    signers = {name: CountingSigner(issuer.signer) for name, issuer in ca.issuers.items()}
    for name, signer in signers.items():
        ca.issuers[name].signer = signer
    client, stranger = env.client(), env.client()
    assert (await client.register()).status == 201 and (await stranger.register()).status == 201
    order = (await client.new_order(["flood.example.com"])).json
    challenge_url = (await client.post(order["authorizations"][0], None)).json["challenges"][0]["url"]
    tables = [accounts_t, orders_t, authzs_t, challenges_t, certificates, audit_log, rate_limits, credentials]
    before = await contents(ca, tables)
    kid, new_order = client.kid or "", client.directory["newOrder"]
    lanes = [await client.fresh_nonce() for _ in range(32)]

    def signed(url: str, payload: bytes | None, key: Any = client.key, **header: str) -> Callable[[str], bytes]:
        return lambda nonce: sign_jws(key, payload, {"nonce": nonce, "url": url, "kid": kid, **header})

    def forged(nonce: str) -> bytes:
        body = json.loads(signed(new_order, b"{}")(nonce))
        return json.dumps({**body, "signature": b64e(b"\0" * 64)}).encode()

    def alg_none(nonce: str) -> bytes:
        header = b64e(json.dumps({"alg": "none", "nonce": nonce, "url": kid, "kid": kid}).encode())
        return json.dumps({"protected": header, "payload": "", "signature": ""}).encode()

    finalize = json.dumps({"csr": b64e(make_csr(["flood.example.com"])[0].public_bytes(Encoding.DER))}).encode()
    jose = "application/jose+json"
    # (url, content type, body for the lane's current nonce): every one is refused.
    kinds: list[tuple[str, str, Callable[[str], bytes]]] = [
        (new_order, jose, lambda nonce: b'{"protected": 1'),  # not JSON
        (new_order, jose, forged),  # the signature does not verify
        (kid, jose, signed(kid, None, nonce="A" * 22)),  # a nonce never issued
        (kid, jose, signed(kid, None, kid=kid.rsplit("/", 1)[0] + "/999999")),  # no such account
        (kid, "application/json", signed(kid, None)),
        (kid, jose, alg_none),
        (challenge_url, jose, signed(challenge_url, b"{}", stranger.key, kid=stranger.kid or "")),  # not yours
        (challenge_url, jose, signed(challenge_url, b"[]")),  # not a challenge response
        (order["finalize"], jose, signed(order["finalize"], finalize)),  # the order is not ready
    ]
    seen: dict[str, int] = {}
    # A plain session: the test client keeps every response until it closes.
    session = aiohttp.ClientSession(base_url=str(env.http.make_url("/")))
    flooder = AcmeClient(session)  # type: ignore[arg-type]

    async def refused(i: int) -> None:
        url, content_type, body = kinds[i % len(kinds)]
        lane = i % len(lanes)
        resp = await flooder.raw_post(url, body(lanes[lane]), content_type)
        assert resp.status >= 400 and resp.headers["Content-Type"] == "application/problem+json", resp
        problem = resp.json
        assert problem["type"].startswith("urn:ietf:params:acme:error:") and problem["status"] == resp.status
        lanes[lane] = resp.headers["Replay-Nonce"]
        seen[resp.problem_type] = seen.get(resp.problem_type, 0) + 1

    async with session:
        # Untraced first: past the first nonce sweep, whose statements are compiled only once.
        await in_waves(UNTRACED, refused, width=len(lanes))
        tracemalloc.start()
        try:
            await in_waves(WARM_UP, refused, width=len(lanes))  # what tracing itself churns settles
            gc.collect()
            start = tracemalloc.get_traced_memory()[0]
            await in_waves(FLOOD, refused, width=len(lanes))
            gc.collect()
            growth = tracemalloc.get_traced_memory()[0] - start
        finally:
            tracemalloc.stop()
    assert growth < MEMORY_BOUND, f"{growth} bytes kept after {FLOOD} refused requests"
    assert set(seen) == {
        "malformed",
        "badNonce",
        "accountDoesNotExist",
        "badSignatureAlgorithm",
        "unauthorized",
        "orderNotReady",
    }, seen
    assert await contents(ca, tables) == before
    assert await row_count(ca, nonces_t) <= NONCE_BOUND
    assert all(s.runs == 0 for s in signers.values())
    assert all(i.signing_attempts == 0 for i in ca.issuers.values())


async def test_a_source_that_keeps_being_refused_is_braked(
    aiohttp_client: Any, ca_dir: Path, loopback: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """LOAD-05 per-source limit: past `refusals_per_minute` refused requests, the source's next
    requests (good ones too) get 429 rateLimited with Retry-After before any work (no nonce spent,
    none handed out, one log line for the whole block); once its bucket drains it is served."""
    clock = FrozenClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    env = await start_env(
        aiohttp_client,
        ca_dir,
        f"sqlite:///{ca_dir / 'tetra.db'}",
        loopback,
        {"TETRA_ACME__RATE_LIMITS__REFUSALS_PER_MINUTE": "20"},
        clock=clock,
    )
    client = env.client()
    assert (await client.register()).status == 201
    kid = client.kid or ""
    with caplog.at_level(logging.INFO, logger="tetra.acme"):
        for _ in range(21):  # the 21st is still answered in full, and starts the block
            resp = await client.post(kid, None, nonce="A" * 22, retry_bad_nonce=False)
            assert resp.status == 400 and resp.problem_type == "badNonce"
        nonce = resp.headers["Replay-Nonce"]
        for _ in range(5):
            braked = await client.post(kid, None, nonce=nonce, retry_bad_nonce=False)
            assert braked.status == 429 and braked.problem_type == "rateLimited"
            assert 1 <= int(braked.headers["Retry-After"]) <= 60 and "Replay-Nonce" not in braked.headers
        assert (await env.http.get("/acme/directory")).status == 429
    blocks = [r for r in caplog.records if "refused unread" in r.getMessage()]
    assert len(blocks) == 1 and blocks[0].levelno == logging.WARNING
    assert not any(r.getMessage().count("rateLimited") for r in caplog.records)  # braked replies: not one by one
    clock.advance(dt.timedelta(seconds=int(braked.headers["Retry-After"])))
    assert (await client.post(kid, None, nonce=nonce)).status == 200  # the nonce was never spent
