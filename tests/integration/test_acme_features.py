"""ACME features through the real app: dns-01, tls-alpn-01, IP identifiers, EAB, key change,
deactivation, ARI, rate limits, CAA, authorization reuse, pre-authorization, profiles, chains."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from interop.acme_helpers import TlsAlpnResponder
from protocols.acme.ari import cert_id_of
from protocols.acme.b64 import b64e
from protocols.acme.jwk import jwk_from_key
from protocols.acme.jws import sign_jws
from protocols.acme.store.tables import authzs_t
from server.app import CA
from tests.unit.protocols.acme.support import AcmeClient, AcmeEnv, make_csr, start_env

pytest_plugins = ["tests.unit.protocols.acme.support"]

LAB_PROFILE = """
description = "Lab certificates (loopback names and addresses)"
protocols = ["acme"]
lint = "none"
[validity]
default_days = 30
max_days = 90
[names]
san_types = ["dns", "ip"]
allow_wildcards = true
[renewal]
window_days = 10
"""


@pytest.fixture
def sqlite_url(ca_dir: Path) -> str:
    return f"sqlite:///{ca_dir / 'tetra.db'}"


async def env_with(
    aiohttp_client: Any,
    ca_dir: Path,
    url: str,
    loop: Any,
    *,
    extra: dict[str, str] | None = None,
    toml: str = "",
    lab: bool = False,
) -> AcmeEnv:
    if toml:
        with (ca_dir / "tetra.toml").open("a") as out:
            out.write("\n" + toml + "\n")
    if lab:
        (ca_dir / "profiles" / "lab.toml").write_text(LAB_PROFILE)
    return await start_env(aiohttp_client, ca_dir, url, loop, extra)


async def account(env: AcmeEnv, **fields: Any) -> AcmeClient:
    client = env.client()
    resp = await client.register(**fields)
    assert resp.status == 201, resp.body
    return client


def leaf_of(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem.encode())[0]


async def test_dns01_wildcard_and_base_name(aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any) -> None:
    env = await env_with(aiohttp_client, ca_dir, sqlite_url, loopback)
    client = await account(env)
    resp = await client.new_order(["*.w.example.com", "w.example.com"])
    assert resp.status == 201
    authzs = [(await client.post(u, None)).json for u in resp.json["authorizations"]]
    wild = next(a for a in authzs if a.get("wildcard"))
    assert wild["identifier"] == {"type": "dns", "value": "w.example.com"}
    assert [c["type"] for c in wild["challenges"]] == ["dns-01"]  # RFC 8555 §7.1.4
    _, pem, _ = await client.issue(env, ["*.w.example.com", "w.example.com"], kind="dns-01")
    sans = leaf_of(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == ["*.w.example.com", "w.example.com"]
    assert ("_acme-challenge.w.example.com", "TXT") in env.dns.queries


async def test_dns01_wrong_record_invalidates_order(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any
) -> None:
    env = await env_with(aiohttp_client, ca_dir, sqlite_url, loopback)
    client = await account(env)
    resp = await client.new_order(["bad.example.com"])
    order_url, order = resp.headers["Location"], resp.json
    authz = (await client.post(order["authorizations"][0], None)).json
    chall = next(c for c in authz["challenges"] if c["type"] == "dns-01")
    env.dns.txt["_acme-challenge.bad.example.com"] = ["wrong"]
    await client.post(chall["url"], {})
    done = await client.poll(order["authorizations"][0], ("valid", "invalid"))
    assert done.json["status"] == "invalid"
    failed = next(c for c in done.json["challenges"] if c["type"] == "dns-01")
    assert failed["error"]["type"].endswith(":unauthorized")
    order = (await client.post(order_url, None)).json
    assert order["status"] == "invalid" and order["error"]["subproblems"][0]["identifier"]["value"] == "bad.example.com"


@pytest.fixture
def tls_responder() -> Iterator[TlsAlpnResponder]:
    responder = TlsAlpnResponder().start()
    yield responder
    responder.stop()


async def test_tls_alpn01_and_ip_identifier(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any, tls_responder: TlsAlpnResponder
) -> None:
    """RFC 8737 for a DNS name and RFC 8738 for an IP address; a non-critical extension fails."""
    env = await env_with(
        aiohttp_client,
        ca_dir,
        sqlite_url,
        loopback,
        lab=True,
        extra={"TETRA_ACME__VALIDATION__TLS_PORT": str(tls_responder.port)},
    )
    client = await account(env)
    resp = await client.new_order(["alpn.example.com", "127.0.0.1"], profile="lab")
    assert resp.status == 201, resp.body
    order, order_url = resp.json, resp.headers["Location"]
    for authz_url in order["authorizations"]:
        authz = (await client.post(authz_url, None)).json
        value = authz["identifier"]["value"]
        kinds = [c["type"] for c in authz["challenges"]]
        if authz["identifier"]["type"] == "ip":
            assert "dns-01" not in kinds  # RFC 8738 §7
        chall = next(c for c in authz["challenges"] if c["type"] == "tls-alpn-01")
        sni = "1.0.0.127.in-addr.arpa" if value == "127.0.0.1" else value
        tls_responder.publish(value, client.key_authorization(chall["token"]), sni=sni)
        await client.post(chall["url"], {})
        assert (await client.poll(authz_url, ("valid", "invalid"))).json["status"] == "valid"
    csr, _ = make_csr(["alpn.example.com", "127.0.0.1"])
    assert (await client.finalize(order, csr)).status == 200
    assert (await client.post(order_url, None)).json["status"] == "valid"

    resp = await client.new_order(["noncrit.example.com"], profile="lab")
    authz_url = resp.json["authorizations"][0]
    chall = next(c for c in (await client.post(authz_url, None)).json["challenges"] if c["type"] == "tls-alpn-01")
    tls_responder.publish("noncrit.example.com", client.key_authorization(chall["token"]), critical=False)
    await client.post(chall["url"], {})
    done = await client.poll(authz_url, ("valid", "invalid"))
    assert done.json["status"] == "invalid"
    failed = next(c for c in done.json["challenges"] if c["type"] == "tls-alpn-01")
    assert "critical" in failed["error"]["detail"]


async def test_http01_redirect_rules(aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any) -> None:
    """ACME-26: a redirect to another port is refused; to the same responder it is followed."""
    env = await env_with(aiohttp_client, ca_dir, sqlite_url, loopback)
    client = await account(env)
    for name, target, expect in (
        ("redir-ok.example.com", "/.well-known/acme-challenge/REAL", "valid"),
        ("redir-bad.example.com", "http://redir-bad.example.com:8081/x", "invalid"),
    ):
        resp = await client.new_order([name])
        authz_url = resp.json["authorizations"][0]
        chall = next(c for c in (await client.post(authz_url, None)).json["challenges"] if c["type"] == "http-01")
        env.http01.redirects[f"/.well-known/acme-challenge/{chall['token']}"] = target
        env.http01.tokens["REAL"] = client.key_authorization(chall["token"])
        await client.post(chall["url"], {})
        done = await client.poll(authz_url, ("valid", "invalid"))
        assert done.json["status"] == expect, done.json


async def test_external_account_binding(aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any) -> None:
    env = await env_with(
        aiohttp_client, ca_dir, sqlite_url, loopback, extra={"TETRA_ACME__EXTERNAL_ACCOUNT_REQUIRED": "true"}
    )
    client = env.client()
    directory = await client.load_directory()
    assert directory["meta"]["externalAccountRequired"] is True
    resp = await client.register()
    assert resp.status == 400 and resp.problem_type == "externalAccountRequired"
    ca = env.app[CA]
    kid, secret = await ca.credentials.create_mac_key("acme")

    def binding(c: AcmeClient, key_id: str = kid, mac: bytes = secret) -> dict[str, str]:
        from protocols.acme.jws import sign_mac

        payload = b64e(b"")  # noqa: F841 - the payload is the account JWK below
        import json

        return sign_mac(
            mac, json.dumps(jwk_from_key(c.key.public_key())).encode(), {"kid": key_id, "url": directory["newAccount"]}
        )

    resp = await client.register(externalAccountBinding=binding(client, mac=b"wrong" * 8))
    assert resp.status == 403 and resp.problem_type == "unauthorized"
    resp = await client.register(externalAccountBinding=binding(client))
    assert resp.status == 201, resp.body
    assert resp.json["externalAccountBinding"] == {"kid": kid}
    await client.issue(env, ["eab.example.com"])
    second = env.client()
    second.directory = directory
    resp = await second.register(externalAccountBinding=binding(second))
    assert resp.status == 403 and "already bound" in resp.json["detail"]
    await ca.credentials.revoke("acme", kid)
    third = env.client()
    third.directory = directory
    resp = await third.register(externalAccountBinding=binding(third))
    assert resp.status == 403


async def test_key_change_and_deactivation(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Key rollover and deactivation, each logged once as an activity event (OPS-13)."""
    caplog.set_level(logging.INFO, logger="tetra.activity")
    env = await env_with(aiohttp_client, ca_dir, sqlite_url, loopback)
    client = await account(env)
    account_id = int((client.kid or "").rsplit("/", 1)[1])
    new_key = ec.generate_private_key(ec.SECP384R1())
    url = client.directory["keyChange"]
    import json

    inner = sign_jws(
        new_key,
        json.dumps({"account": client.kid, "oldKey": jwk_from_key(client.key.public_key())}).encode(),
        {"url": url, "jwk": jwk_from_key(new_key.public_key())},
    )
    resp = await client.post(url, inner)
    assert resp.status == 200, resp.body
    old = client.key
    client.key = new_key
    assert (await client.post(client.kid or "", None)).status == 200
    client.key = old
    resp = await client.post(client.kid or "", None)
    assert resp.problem_type == "malformed"  # signature by the old key no longer verifies
    client.key = new_key
    resp = await client.post(client.kid or "", {"status": "deactivated"})
    assert resp.status == 200 and resp.json["status"] == "deactivated"
    deactivated_by = {k.lower(): v for k, v in resp.headers.items()}["x-request-id"]
    resp = await client.new_order(["x.example.com"])
    assert resp.status == 403 and resp.problem_type == "unauthorized"
    events = [getattr(r, "activity", {}) for r in caplog.records if r.name == "tetra.activity"]
    changed = [e for e in events if e["event"] == "acme.account.key_changed"]
    assert len(changed) == 1 and changed[0]["account"] == account_id and changed[0]["protocol"] == "acme"
    assert changed[0]["new_key"] == client.thumbprint and changed[0]["old_key"] != client.thumbprint
    deactivated = [e for e in events if e["event"] == "acme.account.deactivated"]
    assert [(e["account"], e["request_id"]) for e in deactivated] == [(account_id, deactivated_by)]


async def test_renewal_information_and_replaces(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any
) -> None:
    """RFC 9773: the profile's window; "now" after renew-now or revocation; replaces once only."""
    env = await env_with(aiohttp_client, ca_dir, sqlite_url, loopback)
    client = await account(env)
    _, pem, _ = await client.issue(env, ["ari.example.com"])
    leaf = leaf_of(pem)
    cert_id = str(cert_id_of(leaf))
    resp = await env.http.get(f"/acme/renewal-info/{cert_id}")
    assert resp.status == 200 and "Retry-After" in resp.headers
    window = (await resp.json())["suggestedWindow"]
    start = dt.datetime.fromisoformat(window["start"].replace("Z", "+00:00"))
    assert leaf.not_valid_after_utc - start == dt.timedelta(days=30)  # tls-server: window_days = 30
    from protocols.acme.store.renewals import RenewNowStore

    ca = env.app[CA]
    await RenewNowStore(ca.state).add("profile", "tls-server", "test", ca.clock.now())
    window = (await (await env.http.get(f"/acme/renewal-info/{cert_id}")).json())["suggestedWindow"]
    assert dt.datetime.fromisoformat(window["end"].replace("Z", "+00:00")) <= ca.clock.now()
    assert (await env.http.get("/acme/renewal-info/AAAA.AQ")).status == 404
    assert (await env.http.get("/acme/renewal-info/not-base64!")).status == 400
    resp = await client.new_order(["ari.example.com"], replaces=cert_id)
    assert resp.status == 201 and resp.json["replaces"] == cert_id
    resp = await client.new_order(["ari.example.com"], replaces=cert_id)
    assert resp.status == 409 and resp.problem_type == "alreadyReplaced"
    stranger = await account(env)
    resp = await stranger.new_order(["ari.example.com"], replaces=cert_id)
    assert resp.status == 403


async def test_rate_limits(aiohttp_client: Any, ca_dir: Path, db_url: str, loopback: Any) -> None:
    """ACME-25: per account, per registered domain and per client address; 429 rateLimited with
    Retry-After and a nonce; nothing created when refused; the limits survive a restart."""
    limits = {
        "TETRA_ACME__RATE_LIMITS__ORDERS_PER_ACCOUNT": "2",
        "TETRA_ACME__RATE_LIMITS__ORDERS_PER_IDENTIFIER": "3",
        "TETRA_ACME__RATE_LIMITS__ACCOUNTS_PER_IP": "5",
    }
    env = await env_with(aiohttp_client, ca_dir, db_url, loopback, extra=limits)
    client = await account(env)
    assert (await client.new_order(["a.one.example"])).status == 201
    assert (await client.new_order(["b.two.example"])).status == 201
    resp = await client.new_order(["c.three.example"])
    assert resp.status == 429 and resp.problem_type == "rateLimited", resp.body
    assert 0 < int(resp.headers["Retry-After"]) <= 1800 and "Replay-Nonce" in resp.headers
    assert "this account" in resp.json["detail"]
    assert len((await client.post(f"{client.kid}/orders", None)).json["orders"]) == 2
    # Three orders under shared.example from three accounts, in any spelling of the name.
    for name in ("shared.example", "www.shared.example", "x.y.shared.example"):
        assert (await (await account(env)).new_order([name])).status == 201
    resp = await client.new_order(["other.shared.example"])
    assert resp.status == 429  # this account is out of orders as well as the domain
    fresh = env.client()
    assert (await fresh.register()).status == 201  # the fifth account from this address
    resp = await fresh.new_order(["mail.shared.example", "mail.unrelated.example"])
    assert resp.status == 429 and "shared.example" in resp.json["detail"]
    # The refused order spent nothing: unrelated.example still has all three.
    for _ in range(2):
        assert (await fresh.new_order(["mail.unrelated.example"])).status == 201
    resp = await env.client().register()
    assert resp.status == 429 and resp.problem_type == "rateLimited" and "Retry-After" in resp.headers

    # A restart (a new app on the same database) remembers every bucket.
    again = await start_env(aiohttp_client, ca_dir, db_url, loopback, limits)
    client.http = fresh.http = again.http
    client.nonce = fresh.nonce = None
    assert (await client.new_order(["d.four.example"])).status == 429
    assert (await fresh.new_order(["again.shared.example"])).status == 429
    assert (await again.client().register()).status == 429


async def test_pre_authorizations_are_rate_limited_like_orders(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any
) -> None:
    """ACME-25: newAuthz spends the same per-account and per-domain buckets as newOrder, so
    pre-authorization is no way around the order limits; a refused one creates nothing."""
    env = await env_with(
        aiohttp_client,
        ca_dir,
        sqlite_url,
        loopback,
        lab=True,
        toml="[acme.profiles.lab]\npre_authorization = true",
        extra={
            "TETRA_ACME__RATE_LIMITS__ORDERS_PER_ACCOUNT": "3",
            "TETRA_ACME__RATE_LIMITS__ORDERS_PER_IDENTIFIER": "2",
        },
    )
    client = env.client()
    lab_dir = await client.load_directory("https://127.0.0.1:8443/acme/lab/directory")
    assert (await client.register()).status == 201

    async def pre_authorize(name: str) -> Any:
        return await client.post(lab_dir["newAuthz"], {"identifier": {"type": "dns", "value": name}})

    assert (await pre_authorize("a.pre.example")).status == 201
    assert (await pre_authorize("b.pre.example")).status == 201
    refused = await pre_authorize("c.pre.example")  # a third name under pre.example
    assert refused.status == 429 and refused.problem_type == "rateLimited" and "pre.example" in refused.json["detail"]
    assert (await pre_authorize("other.example")).status == 201  # the account's third
    resp = await client.new_order(["more.example"], profile="lab")
    assert resp.status == 429 and "this account" in resp.json["detail"]

    def count_authzs(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(authzs_t)).scalar_one())

    assert await env.app[CA].db.read(count_authzs) == 3  # the refused requests created nothing


async def test_caa(aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any) -> None:
    """ACME-23: issue for another CA refuses, ours allows, issuewild for wildcards, SERVFAIL refuses."""
    env = await env_with(
        aiohttp_client,
        ca_dir,
        sqlite_url,
        loopback,
        extra={"TETRA_ACME__VALIDATION__CAA": "true", "TETRA_ACME__CAA_IDENTITIES": '["tetra.example"]'},
    )
    env.dns.caa["other.example.com"] = [(0, "issue", "letsencrypt.org")]
    env.dns.caa["ours.example.com"] = [(0, "issue", "tetra.example")]
    env.dns.caa["crit.example.com"] = [(128, "tbs", "x"), (0, "issue", "tetra.example")]
    env.dns.servfail.add("broken.example.com")
    client = await account(env)
    expected = {
        "sub.ours.example.com": "valid",
        "sub.other.example.com": "invalid",
        "crit.example.com": "invalid",
        "broken.example.com": "invalid",
        "free.example.com": "valid",
    }
    for name, want in expected.items():
        resp = await client.new_order([name])
        authz_url = resp.json["authorizations"][0]
        chall = next(c for c in (await client.post(authz_url, None)).json["challenges"] if c["type"] == "http-01")
        env.http01.tokens[chall["token"]] = client.key_authorization(chall["token"])
        await client.post(chall["url"], {})
        done = await client.poll(authz_url, ("valid", "invalid"))
        assert done.json["status"] == want, (name, done.json)
        if want == "invalid" and name != "broken.example.com":
            failed = next(c for c in done.json["challenges"] if c["type"] == "http-01")
            assert failed["error"]["type"].endswith(":caa")


async def test_authorization_reuse_stays_within_the_account(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any
) -> None:
    """ACME-24."""
    env = await env_with(aiohttp_client, ca_dir, sqlite_url, loopback)
    client = await account(env)
    await client.issue(env, ["reuse.example.com"])
    again = await client.new_order(["reuse.example.com"])
    assert again.json["status"] == "ready"
    other = await account(env)
    assert (await other.new_order(["reuse.example.com"])).json["status"] == "pending"


async def test_authorization_reuse_follows_the_br_periods_by_date(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any
) -> None:
    """ACME-24 with a frozen clock: with authz_reuse at its 398-day maximum, a valid authorization
    serves new orders of the same account only while the BR period in force allows (398/200/100/10
    days, shortening at 2026-03-15, 2027-03-15, 2029-03-15); another account never reuses it."""
    from ca.clock import FrozenClock

    clock = FrozenClock(dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC))
    env = await start_env(
        aiohttp_client, ca_dir, sqlite_url, loopback, {"TETRA_ACME__AUTHZ_REUSE": str(398 * 86400)}, clock=clock
    )
    owner, stranger = await account(env), await account(env)

    def jump_to(text: str) -> None:
        target = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        clock.advance(target - clock.now())

    async def validate(name: str) -> None:
        resp = await owner.new_order([name])
        assert resp.status == 201 and resp.json["status"] == "pending"
        await owner.authorize(resp.json, env)

    async def reused(name: str) -> bool:
        resp = await owner.new_order([name])
        assert resp.status == 201, resp.body
        assert (await stranger.new_order([name])).json["status"] == "pending"  # never across accounts
        return bool(resp.json["status"] == "ready")

    # Validated under 398 days; from 2026-03-15 issuance allows 200, so it lasts until 2026-09-17.
    await validate("a.reuse.example")
    jump_to("2026-03-10T12:00")
    assert await reused("a.reuse.example")
    jump_to("2026-09-16T12:00")
    assert await reused("a.reuse.example")
    jump_to("2026-09-17T12:00")
    assert not await reused("a.reuse.example")
    # 200 days when validated, 100 from 2027-03-15: usable until 2027-04-11 12:00.
    jump_to("2027-01-01T12:00")
    await validate("b.reuse.example")
    jump_to("2027-04-11T10:30")  # with more than the hour a reused one must have left
    assert await reused("b.reuse.example")
    jump_to("2027-04-11T13:00")
    assert not await reused("b.reuse.example")
    # 10 days from 2029-03-15.
    jump_to("2029-03-20T12:00")
    await validate("c.reuse.example")
    jump_to("2029-03-30T10:30")
    assert await reused("c.reuse.example")
    jump_to("2029-03-30T13:00")
    assert not await reused("c.reuse.example")


async def test_configured_reuse_shorter_than_the_br(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any
) -> None:
    """ACME-24: authz_reuse below the BR period wins (30 days in 2026, where the BR allow 200); a
    reused authorization must have an hour left, and the order expires no later than it."""
    from ca.clock import FrozenClock

    clock = FrozenClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    env = await start_env(
        aiohttp_client, ca_dir, sqlite_url, loopback, {"TETRA_ACME__AUTHZ_REUSE": str(30 * 86400)}, clock=clock
    )
    client = await account(env)
    resp = await client.new_order(["short.reuse.example"])
    await client.authorize(resp.json, env)
    authz = (await client.post(resp.json["authorizations"][0], None)).json
    clock.advance(dt.timedelta(days=29))
    reusing = (await client.new_order(["short.reuse.example"])).json
    assert reusing["status"] == "ready"
    # The order ends when the authorization it relies on does (7 days asked, 1 day left).
    assert reusing["expires"] == authz["expires"]
    clock.advance(dt.timedelta(hours=23, minutes=30))
    # Still young enough for reuse, but with 30 minutes left it could not see an order through.
    assert (await client.new_order(["short.reuse.example"])).json["status"] == "pending"
    clock.advance(dt.timedelta(days=2))
    assert (await client.new_order(["short.reuse.example"])).json["status"] == "pending"


async def test_profiles_directories_and_validity(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any
) -> None:
    """Per-profile directories, the `profile` field, notBefore/notAfter and pre-authorization."""
    env = await env_with(
        aiohttp_client, ca_dir, sqlite_url, loopback, lab=True, toml="[acme.profiles.lab]\npre_authorization = true"
    )
    client = env.client()
    lab_dir = await client.load_directory("https://127.0.0.1:8443/acme/lab/directory")
    assert list(lab_dir["meta"]["profiles"]) == ["lab"] and "newAuthz" in lab_dir
    assert (await env.http.get("/acme/nope/directory")).status == 404
    assert (await env.http.get("/acme/email/directory")).status == 404  # email does not allow ACME
    main = (await (await env.http.get("/acme/directory")).json())["meta"]["profiles"]
    assert set(main) == {"lab", "tls-client", "tls-server"}
    assert (await client.register()).status == 201
    resp = await client.new_order(["v.example.com"], profile="tls-server")
    assert resp.status == 400 and resp.problem_type == "invalidProfile"
    resp = await client.post(lab_dir["newAuthz"], {"identifier": {"type": "dns", "value": "pre.example.com"}})
    assert resp.status == 201 and resp.json["status"] == "pending"
    chall = next(c for c in resp.json["challenges"] if c["type"] == "http-01")
    env.http01.tokens[chall["token"]] = client.key_authorization(chall["token"])
    await client.post(chall["url"], {})
    await client.poll(resp.headers["Location"], ("valid",))
    not_after = (dt.datetime.now(dt.UTC) + dt.timedelta(days=10)).replace(microsecond=0)
    resp = await client.new_order(["pre.example.com"], notAfter=not_after.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert resp.status == 201 and resp.json["status"] == "ready"  # the pre-authorization is reused
    csr, _ = make_csr(["pre.example.com"])
    done = await client.finalize(resp.json, csr)
    cert = (await client.post(done.json["certificate"], None)).body.decode()
    assert leaf_of(cert).not_valid_after_utc == not_after
    resp = await client.new_order(
        ["pre.example.com"], notAfter=(not_after + dt.timedelta(days=200)).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    assert resp.status == 400 and "90 days" in resp.json["detail"]


async def test_alternate_chains(aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any) -> None:
    (ca_dir / "ca" / "alt.pem").write_bytes(
        (ca_dir / "ca" / "issuing-ca.pem").read_bytes() + (ca_dir / "ca" / "root.pem").read_bytes()
    )
    env = await env_with(
        aiohttp_client, ca_dir, sqlite_url, loopback, toml='[acme.alternate_chains.issuing-ca]\nfiles = ["ca/alt.pem"]'
    )
    client = await account(env)
    order, pem, _ = await client.issue(env, ["alt.example.com"])
    resp = await client.post(order["certificate"], None)
    assert f'<{order["certificate"]}/1>;rel="alternate"' in resp.headers["Link"]
    alt = await client.post(order["certificate"] + "/1", None)
    assert len(x509.load_pem_x509_certificates(alt.body)) == 3 and len(x509.load_pem_x509_certificates(resp.body)) == 2
    leaf = leaf_of(pem)
    assert leaf.public_bytes(Encoding.PEM) in alt.body


async def test_nonces_are_shared_between_processes(
    aiohttp_client: Any, ca_dir: Path, sqlite_url: str, loopback: Any
) -> None:
    """ACME-21 / ST-15: a nonce from one server is accepted once by another, never twice."""
    first = await env_with(aiohttp_client, ca_dir, sqlite_url, loopback)
    second = await start_env(aiohttp_client, ca_dir, sqlite_url, loopback)
    client = await account(first)
    nonce = await client.fresh_nonce()
    other = AcmeClient(second.http, key=client.key, kid=client.kid, directory=client.directory)
    assert (await other.post(client.kid or "", None, nonce=nonce)).status == 200
    assert (await client.post(client.kid or "", None, nonce=nonce)).problem_type == "badNonce"
