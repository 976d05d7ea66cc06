"""Orders (ST-02) and challenges (ST-19) left in "processing" by a crash, through the real app
on SQLite and PostgreSQL.

The crash is simulated by writing into the real store what finalize writes just before it
calls the core (status processing, processing_at, the CSR key's hash) and then not
continuing, as a process killed at F1/F2 (ca/faults.py) leaves it. A frozen clock moves
time past the recovery thresholds instead of waiting for them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import update

from ca.clock import FrozenClock
from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Identifier, Issued, Requester
from ca.records import CertificateRecord
from ca.service import CertificateAuthority
from ca.store.repositories import CertificateFilter
from protocols.acme.ari import cert_id_of
from protocols.acme.orders import RECOVER_AFTER, requester_name, spki_sha256
from protocols.acme.store.authorizations import MAX_VALIDATION_ATTEMPTS
from protocols.acme.store.orders import OrderStore
from protocols.acme.store.tables import challenges_t
from server.app import CA, HANDLERS
from tests.helpers import CountingSigner, enroll
from tests.unit.protocols.acme.support import AcmeClient, AcmeEnv, make_csr, start_env

pytest_plugins = ["tests.unit.protocols.acme.support"]

STUCK_AFTER = 120  # seconds; [acme] stuck_after


@pytest.fixture
async def stuck_env(aiohttp_client: Any, ca_dir: Path, db_url: str, loopback: Any) -> tuple[AcmeEnv, FrozenClock]:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    env = await start_env(
        aiohttp_client, ca_dir, db_url, loopback, {"TETRA_ACME__STUCK_AFTER": str(STUCK_AFTER)}, clock=clock
    )
    return env, clock


async def ready_order(env: AcmeEnv, client: AcmeClient, names: list[str], **fields: Any) -> tuple[dict[str, Any], str]:
    resp = await client.new_order(names, **fields)
    assert resp.status == 201, resp.body
    order, url = resp.json, resp.headers["Location"]
    await client.authorize(order, env)
    assert (await client.poll(url, ("ready", "invalid"))).json["status"] == "ready"
    return order, url


async def crash_in_finalize(env: AcmeEnv, order_url: str, csr: x509.CertificateSigningRequest) -> None:
    """The order as finalize leaves it right before the core signs; then the process "dies"."""
    spki = csr.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    orders = OrderStore(env.app[CA].state)
    moved = await orders.compare_and_set(
        int(order_url.rsplit("/", 1)[1]),
        ("ready",),
        {"status": "processing", "processing_at": env.app[CA].clock.now(), "csr_key": spki_sha256(spki)},
    )
    assert moved


async def issued_behind_the_order(
    env: AcmeEnv, client: AcmeClient, name: str, csr: x509.CertificateSigningRequest
) -> Issued:
    """What the crashed finalize had got as far as: the core issued and stored the certificate
    for this account's order, but the order never heard of it."""
    account_id = int((client.kid or "").rsplit("/", 1)[1])
    requester = Requester(requester_name(account_id), AuthMethod.ACME_ACCOUNT, frozenset({Identifier("dns", name)}))
    request = enrollment_from_csr(csr, protocol="acme", profile_name="tls-server", requester=requester)
    issued = await enroll(env.app[CA], request)
    assert isinstance(issued, Issued)
    return issued


async def acme_certificates(env: AcmeEnv) -> list[CertificateRecord]:
    ca: CertificateAuthority = env.app[CA]
    return await ca.certificates.list(CertificateFilter(protocol="acme"))


async def test_stuck_order_fails_with_server_internal_and_a_new_order_issues(
    stuck_env: tuple[AcmeEnv, FrozenClock],
) -> None:
    """ST-02: a processing order whose issuance never ran stays "processing" (with Retry-After)
    until stuck_after, then the polling client sees it invalid with serverInternal; finalizing
    it again is refused, and a new order for the same name gets a certificate."""
    env, clock = stuck_env
    client = env.client()
    assert (await client.register()).status == 201
    order, url = await ready_order(env, client, ["stuck.example.com"])
    csr, _ = make_csr(["stuck.example.com"])
    await crash_in_finalize(env, url, csr)

    crashed = clock.now()
    for since in (dt.timedelta(0), RECOVER_AFTER, dt.timedelta(seconds=STUCK_AFTER - 1)):
        clock.advance(crashed + since - clock.now())
        resp = await client.post(url, None)
        assert resp.status == 200 and resp.json["status"] == "processing", (since, resp.json)
        assert "Retry-After" in resp.headers
    clock.advance(crashed + dt.timedelta(seconds=STUCK_AFTER) - clock.now())
    resp = await client.post(url, None)
    assert resp.status == 200 and resp.json["status"] == "invalid", resp.json
    assert resp.json["error"]["type"] == "urn:ietf:params:acme:error:serverInternal"
    again = await client.finalize(order, csr)
    assert again.status == 403 and again.problem_type == "orderNotReady"
    assert await acme_certificates(env) == []

    _, pem, _ = await client.issue(env, ["stuck.example.com"])
    leaf = x509.load_pem_x509_certificates(pem.encode())[0]
    assert [r.serial for r in await acme_certificates(env)] == [leaf.serial_number]
    assert (await client.post(url, None)).json["status"] == "invalid"  # the old order stays failed


async def test_certificate_issued_before_the_crash_is_found_not_failed(
    stuck_env: tuple[AcmeEnv, FrozenClock],
) -> None:
    """ST-02 / ST-01 F4: the core stored the certificate but the process died before the order
    heard of it. Polling past stuck_after finds that certificate (same requester, names and
    key) and makes the order valid with it, instead of failing the order: no second signature."""
    env, clock = stuck_env
    ca = env.app[CA]
    counting = CountingSigner(ca.issuers[ca.default_issuer].signer)
    ca.issuers[ca.default_issuer].signer = counting
    client = env.client()
    assert (await client.register()).status == 201
    _, url = await ready_order(env, client, ["found.example.com"])
    csr, _ = make_csr(["found.example.com"])
    await crash_in_finalize(env, url, csr)
    issued = await issued_behind_the_order(env, client, "found.example.com", csr)
    assert counting.runs == 1

    assert (await client.post(url, None)).json["status"] == "processing"  # too early to look
    clock.advance(dt.timedelta(seconds=STUCK_AFTER + 1))
    resp = await client.post(url, None)
    assert resp.status == 200 and resp.json["status"] == "valid", resp.json
    cert = await client.post(resp.json["certificate"], None)
    assert cert.status == 200
    assert x509.load_pem_x509_certificates(cert.body)[0] == issued.certificate
    assert counting.runs == 1 and len(await acme_certificates(env)) == 1


async def test_stuck_replacement_order_does_not_block_a_new_one(stuck_env: tuple[AcmeEnv, FrozenClock]) -> None:
    """ST-02 with ARI (RFC 9773 §5): a renewal order stuck in processing must not keep its
    'replaces' claim past stuck_after, or the client could never renew that certificate: a new
    order replacing the same certificate is accepted without anyone polling the stuck one."""
    env, clock = stuck_env
    client = env.client()
    assert (await client.register()).status == 201
    _, pem, _ = await client.issue(env, ["renew.example.com"])
    cert_id = str(cert_id_of(x509.load_pem_x509_certificates(pem.encode())[0]))
    _, url = await ready_order(env, client, ["renew.example.com"], replaces=cert_id)
    await crash_in_finalize(env, url, make_csr(["renew.example.com"])[0])

    early = await client.new_order(["renew.example.com"], replaces=cert_id)
    assert early.status == 409 and early.problem_type == "alreadyReplaced"  # still in progress
    clock.advance(dt.timedelta(seconds=STUCK_AFTER + 1))
    resp = await client.new_order(["renew.example.com"], replaces=cert_id)
    assert resp.status == 201, resp.body
    assert (await client.post(url, None)).json["status"] == "invalid"


async def test_the_sweeper_settles_stuck_orders_nobody_reads(stuck_env: tuple[AcmeEnv, FrozenClock]) -> None:
    """ST-02 sweeper: orders left in processing are settled without a client polling them: the
    one whose certificate the core had stored becomes valid with it, the other fails with
    serverInternal once stuck_after has passed; orders that are not stuck are left alone."""
    env, clock = stuck_env
    ca = env.app[CA]
    sweeper = env.app[HANDLERS]["acme"].sweeper
    client = env.client()
    assert (await client.register()).status == 201
    _, lost_url = await ready_order(env, client, ["lost.example.com"])
    await crash_in_finalize(env, lost_url, make_csr(["lost.example.com"])[0])
    _, made_url = await ready_order(env, client, ["made.example.com"])
    csr, _ = make_csr(["made.example.com"])
    await crash_in_finalize(env, made_url, csr)
    await issued_behind_the_order(env, client, "made.example.com", csr)
    _, waiting_url = await ready_order(env, client, ["waiting.example.com"])  # ready: not the sweeper's

    orders = OrderStore(ca.state)

    async def stored_status(url: str) -> str:
        order = await orders.get(int(url.rsplit("/", 1)[1]))
        assert order is not None
        return order.status

    assert await sweeper.sweep_once() == 0  # too early to look at either
    clock.advance(RECOVER_AFTER + dt.timedelta(seconds=1))
    assert await sweeper.sweep_once() == 1
    assert [await stored_status(u) for u in (made_url, lost_url)] == ["valid", "processing"]
    clock.advance(dt.timedelta(seconds=STUCK_AFTER))
    assert await sweeper.sweep_once() == 1
    assert await stored_status(lost_url) == "invalid"
    assert await stored_status(waiting_url) == "ready"
    assert await sweeper.sweep_once() == 0
    resp = await client.post(lost_url, None)
    assert resp.json["error"]["type"] == "urn:ietf:params:acme:error:serverInternal"
    assert sweeper.interval == STUCK_AFTER / 4


# -- ST-19: a validation a crash cut short ---------------------------------------------------


async def _challenge_of(client: AcmeClient, names: list[str]) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """A new order for `names`, its first authorization's URL and that authorization's http-01 challenge."""
    resp = await client.new_order(names)
    assert resp.status == 201, resp.body
    authz_url = resp.json["authorizations"][0]
    authz = (await client.post(authz_url, None)).json
    return resp.json, authz_url, next(c for c in authz["challenges"] if c["type"] == "http-01")


async def _crash_in_validation(env: AcmeEnv, challenge_url: str, attempts: int = 1) -> None:
    """The challenge as the client's POST leaves it (processing since now) when the process then
    dies before the validation records anything."""
    challenge_id = int(challenge_url.rsplit("/", 1)[1])
    now = env.app[CA].clock.now()

    def crash(tx: Any) -> None:
        tx.conn.execute(
            update(challenges_t)
            .where(challenges_t.c.id == challenge_id, challenges_t.c.status == "pending")
            .values(status="processing", processing_at=now, attempts=attempts)
        )

    await env.app[CA].state.write(crash)


async def _validations_done(env: AcmeEnv) -> None:
    await asyncio.gather(*env.app[HANDLERS]["acme"].validations.tasks)


async def test_sweeper_resumes_a_validation_a_crash_cut_short(stuck_env: tuple[AcmeEnv, FrozenClock]) -> None:
    """ST-19: a challenge left processing by a crash is not touched while a live validation could
    still be running; past challenge_stuck_after the sweeper takes it over (one of two sweepers
    racing for it), validates it again and the authorization becomes valid. A late result of the
    first validation changes nothing: a challenge is decided once."""
    env, clock = stuck_env
    sweeper = env.app[HANDLERS]["acme"].challenge_sweeper
    client = env.client()
    assert (await client.register()).status == 201
    order, authz_url, chall = await _challenge_of(client, ["resume.example.com"])
    env.publish("http-01", "resume.example.com", chall["token"], client.key_authorization(chall["token"]))
    await _crash_in_validation(env, chall["url"])

    assert await sweeper.sweep_once() == 0
    clock.advance(dt.timedelta(seconds=env.app[HANDLERS]["acme"].ctx.config.challenge_stuck_after + 1))
    # The app's own sweeper job may run meanwhile too: whoever wins, one takes the validation over.
    assert sum(await asyncio.gather(sweeper.sweep_once(), sweeper.sweep_once())) <= 1
    await _validations_done(env)
    assert (await client.post(authz_url, None)).json["status"] == "valid"
    assert (await client.poll(order["finalize"].rsplit("/", 1)[0], ("ready",))).json["status"] == "ready"

    ctx = env.app[HANDLERS]["acme"].ctx
    found = await ctx.authzs.challenge(int(chall["url"].rsplit("/", 1)[1]))
    assert found is not None
    challenge, authz = found
    assert challenge.status == "valid" and challenge.attempts == 2  # the client's, then one takeover
    late = await ctx.authzs.finish_challenge(
        challenge, authz, ok=False, error={"detail": "late"}, now=clock.now(), valid_until=clock.now()
    )
    assert late is False and (await client.post(authz_url, None)).json["status"] == "valid"
    assert await sweeper.sweep_once() == 0


async def test_repeated_post_on_a_stale_challenge_takes_it_over(stuck_env: tuple[AcmeEnv, FrozenClock]) -> None:
    """ST-19: the client's repeated POST to a challenge processing since a crash answers at once
    (processing, Retry-After) while the validation could still be alive, and once it is stale the
    POST itself restarts the validation, without waiting for the sweeper."""
    env, clock = stuck_env
    client = env.client()
    assert (await client.register()).status == 201
    _, authz_url, chall = await _challenge_of(client, ["repost.example.com"])
    env.publish("http-01", "repost.example.com", chall["token"], client.key_authorization(chall["token"]))
    await _crash_in_validation(env, chall["url"])

    early = await asyncio.wait_for(client.post(chall["url"], {}), 5)
    assert early.status == 200 and early.json["status"] == "processing" and "Retry-After" in early.headers
    assert not env.app[HANDLERS]["acme"].validations.tasks
    clock.advance(dt.timedelta(seconds=env.app[HANDLERS]["acme"].ctx.config.challenge_stuck_after + 1))
    again = await asyncio.wait_for(client.post(chall["url"], {}), 10)
    assert again.status == 200 and again.json["status"] in ("processing", "valid"), again.json
    await _validations_done(env)
    assert (await client.post(authz_url, None)).json["status"] == "valid"


async def test_validation_interrupted_too_often_fails(stuck_env: tuple[AcmeEnv, FrozenClock]) -> None:
    """ST-19: a challenge whose validation died with its process MAX_VALIDATION_ATTEMPTS times
    is failed by the sweeper with serverInternal instead of being tried again: the authorization
    and the order become invalid, and the client's POST gets that answer at once."""
    env, clock = stuck_env
    sweeper = env.app[HANDLERS]["acme"].challenge_sweeper
    client = env.client()
    assert (await client.register()).status == 201
    order, authz_url, chall = await _challenge_of(client, ["doomed.example.com"])
    await _crash_in_validation(env, chall["url"], attempts=MAX_VALIDATION_ATTEMPTS)

    clock.advance(dt.timedelta(seconds=env.app[HANDLERS]["acme"].ctx.config.challenge_stuck_after + 1))
    assert await sweeper.sweep_once() <= 1  # the app's own sweeper job may have been first
    assert not env.app[HANDLERS]["acme"].validations.tasks
    resp = await asyncio.wait_for(client.post(chall["url"], {}), 5)
    assert resp.json["status"] == "invalid"
    assert resp.json["error"]["type"] == "urn:ietf:params:acme:error:serverInternal"
    assert (await client.post(authz_url, None)).json["status"] == "invalid"
    assert (await client.poll(order["finalize"].rsplit("/", 1)[0], ("invalid",))).json["status"] == "invalid"
