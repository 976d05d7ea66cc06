"""ACME-20 as a property: whatever clients do, no certificate names anything its account did not
hold a valid authorization for when it finalized.

Hypothesis draws sequences of create order / answer a challenge / deactivate an authorization /
deactivate an account / let time pass / finalize, for two accounts, against the real app on a
real SQLite store with real http-01 validation. A small model records what the server confirmed
(valid authorizations and their `expires`) and what the clients undid; every certificate the
server hands out must fit the model as it stood when finalize was sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from cryptography import x509
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ca.clock import FrozenClock
from interop.acme_helpers import Http01Responder, LoopbackDns
from server.app import build_app
from server.wiring import build_ca, read_config
from tests.conftest import lint_everything_issued
from tests.unit.protocols.acme.support import AcmeClient, AcmeEnv, acme_environ, make_csr

pytest_plugins = ["tests.unit.protocols.acme.support"]

NAMES = ("p0.prop.example.com", "p1.prop.example.com", "p2.prop.example.com")
LIFETIMES = {  # short, so letting a day or two pass expires things
    "TETRA_ACME__ORDER_LIFETIME": str(2 * 86400),
    "TETRA_ACME__AUTHZ_LIFETIME": str(86400),
    "TETRA_ACME__AUTHZ_REUSE": str(86400),
    "TETRA_ACME__VALIDATION__INLINE_WAIT": "5",
}

ACCOUNT = st.integers(0, 1)
INDEX = st.sampled_from([-1, -1, 0, 1, 2])  # modulo the orders/authorizations there are; -1: the latest
ARGUMENTS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "order": st.tuples(ACCOUNT, st.sets(st.sampled_from(NAMES), min_size=1, max_size=2).map(sorted)),
    "authorize": st.tuples(ACCOUNT, INDEX, INDEX),
    "authorize_all": st.tuples(ACCOUNT, INDEX),
    "deactivate_authz": st.tuples(ACCOUNT, INDEX, INDEX),
    "deactivate_account": st.tuples(ACCOUNT),
    "wait": st.tuples(st.sampled_from([1, 20, 30, 60])),  # hours
    "finalize": st.tuples(ACCOUNT, INDEX),
}
ARGUMENTS |= {f"{kind}_foreign": ARGUMENTS[kind] for kind in ("authorize", "deactivate_authz", "finalize")}
# Weighted so that sequences often get as far as issuance; the rarer actions take it away.
KINDS = ["order"] * 3 + ["authorize", "authorize_all", "authorize_all"] + ["finalize"] * 3
KINDS += ["deactivate_authz", "deactivate_account", "wait"]
KINDS += ["authorize_foreign", "deactivate_authz_foreign", "finalize_foreign"]
ACTION = st.sampled_from(KINDS).flatmap(lambda kind: ARGUMENTS[kind].map(lambda args: (kind, *args)))


@dataclass
class Model:
    """What the server confirmed to each account, and what was undone since."""

    clock: FrozenClock
    valid: list[dict[str, tuple[str, dt.datetime]]] = field(default_factory=lambda: [{}, {}])  # url -> (name, expires)
    deactivated_accounts: set[int] = field(default_factory=set)
    orders: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (account, order JSON with "url")
    authz_owner: dict[str, int] = field(default_factory=dict)

    def authorized(self, account: int) -> set[str]:
        if account in self.deactivated_accounts:
            return set()
        now = self.clock.now()
        return {name for name, expires in self.valid[account].values() if expires > now}


@dataclass
class Run:
    env: AcmeEnv
    clock: FrozenClock
    issued: int = 0
    refused: int = 0


async def apply(run: Run, model: Model, clients: list[AcmeClient], action: tuple[Any, ...]) -> None:
    kind = action[0]
    if kind == "wait":
        run.clock.advance(dt.timedelta(hours=action[1]))
        return
    if kind == "deactivate_account":
        resp = await clients[action[1]].post(clients[action[1]].kid or "", {"status": "deactivated"})
        if resp.status == 200:
            model.deactivated_accounts.add(action[1])
        return
    account, client = action[1], clients[action[1]]
    if kind == "order":
        resp = await client.new_order(list(action[2]))
        if resp.status == 201:
            model.orders.append((account, {**resp.json, "url": resp.headers["Location"]}))
            for url in resp.json["authorizations"]:
                assert model.authz_owner.setdefault(url, account) == account, "an authorization crossed accounts"
        return
    # Each account acts on its own orders; the "*_foreign" kinds try the other account's.
    foreign = kind.endswith("_foreign")
    kind = kind.removesuffix("_foreign")
    mine = [(o, order) for o, order in model.orders if (o != account) == foreign]
    if not mine:
        return
    owner, order = mine[action[2] % len(mine)]
    if kind == "finalize":
        await finalize(run, model, client, account, order)
        return
    if kind == "authorize_all":
        for url in order["authorizations"]:
            await authorize(run, model, client, account, url)
        return
    authz_url = order["authorizations"][action[3] % len(order["authorizations"])]
    if kind == "authorize":
        await authorize(run, model, client, account, authz_url)
    elif kind == "deactivate_authz":
        resp = await client.post(authz_url, {"status": "deactivated"})
        if resp.status == 200 and resp.json["status"] == "deactivated":
            assert account == owner, "an account deactivated another account's authorization"
            model.valid[account].pop(authz_url, None)


async def authorize(run: Run, model: Model, client: AcmeClient, account: int, authz_url: str) -> None:
    resp = await client.post(authz_url, None)
    if account != model.authz_owner[authz_url]:
        assert resp.status == 403, "an account read another account's authorization"
        return
    if resp.status != 200 or resp.json["status"] != "pending":
        return
    chall = next(c for c in resp.json["challenges"] if c["type"] == "http-01")
    run.env.http01.tokens[chall["token"]] = client.key_authorization(chall["token"])
    if (await client.post(chall["url"], {})).status != 200:
        return
    done = await client.poll(authz_url, ("valid", "invalid", "deactivated", "expired"))
    if done.status == 200 and done.json["status"] == "valid":
        expires = dt.datetime.fromisoformat(done.json["expires"].replace("Z", "+00:00"))
        model.valid[account][authz_url] = (done.json["identifier"]["value"], expires)


async def finalize(run: Run, model: Model, client: AcmeClient, account: int, order: dict[str, Any]) -> None:
    names = [i["value"] for i in order["identifiers"]]
    allowed = model.authorized(account)  # the model at the moment finalize is sent
    csr, _ = make_csr(names)
    resp = await client.finalize(order, csr)
    if resp.status != 200:
        run.refused += 1
        return
    done = await client.poll(order["url"], ("valid", "invalid"))
    if done.json.get("status") != "valid":
        run.refused += 1
        return
    cert_resp = await client.post(done.json["certificate"], None)
    assert cert_resp.status == 200
    cert = x509.load_pem_x509_certificates(cert_resp.body)[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    sans = set(san.get_values_for_type(x509.DNSName))
    assert sans <= allowed, f"account {account} got {sorted(sans)} holding only {sorted(allowed)} at finalize"
    run.issued += 1


async def play(run: Run, actions: list[tuple[Any, ...]]) -> None:
    model = Model(run.clock)
    clients = [run.env.client(), run.env.client()]
    for client in clients:
        resp = await client.register()
        assert resp.status == 201, resp.body
    for action in actions:
        await apply(run, model, clients, action)


def test_no_certificate_without_valid_authorization_at_finalize(
    ca_dir: Path, loopback: tuple[LoopbackDns, Http01Responder]
) -> None:
    """ACME-20 (property): random sequences never yield a certificate with an unauthorized name."""
    db_url = f"sqlite:///{ca_dir / 'tetra.db'}"
    dns_server, responder = loopback
    config = read_config(ca_dir / "tetra.toml", environ=acme_environ(db_url, dns_server, responder, LIFETIMES))
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    loop = asyncio.new_event_loop()
    http: TestClient[Any, Any] = TestClient(TestServer(build_app(config, clock=clock)), loop=loop)
    loop.run_until_complete(http.start_server())
    run = Run(AcmeEnv(dns_server, responder, ca_dir, http.app, http), clock)

    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(st.lists(ACTION, min_size=4, max_size=16))
    # The sequences the property is about, always tried: issuance, and each way to lose authorization.
    @example([("order", 0, [NAMES[0]]), ("authorize", 0, 0, 0), ("finalize", 0, 0)])
    @example([("order", 0, [NAMES[0]]), ("authorize", 0, 0, 0), ("deactivate_authz", 0, 0, 0), ("finalize", 0, 0)])
    @example([("order", 0, [NAMES[1]]), ("authorize", 0, 0, 0), ("wait", 60), ("finalize", 0, 0)])
    @example([("order", 0, [NAMES[1]]), ("authorize", 0, 0, 0), ("deactivate_account", 0), ("finalize", 0, 0)])
    @example([("order", 0, [NAMES[2]]), ("authorize", 0, 0, 0), ("finalize", 1, 0), ("order", 1, [NAMES[2]])])
    # A reused authorization expires before the order that reused it.
    @example([("order", 0, [NAMES[0]]), ("authorize_all", 0, 0), ("wait", 20), ("order", 0, [NAMES[0]]), ("wait", 30),
              ("finalize", 0, -1)])  # fmt: skip
    def check(actions: list[tuple[Any, ...]]) -> None:
        loop.run_until_complete(play(run, actions))

    try:
        check()
    finally:
        loop.run_until_complete(http.close())

        async def lint() -> None:
            authority = await build_ca(config)
            try:
                await lint_everything_issued(authority)
            finally:
                await authority.close()

        loop.run_until_complete(lint())
        loop.close()
    assert run.issued > 0 and run.refused > 0  # both outcomes were exercised
