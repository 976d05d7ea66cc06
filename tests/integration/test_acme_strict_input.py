"""ACME ids and JSON, parsed strictly (docs/reliability.md DOS-13, DOS-14): every refusal is a
problem document, never a 500, and nothing is issued."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocols.acme.jwk import jwk_from_key
from protocols.acme.jws import sign_jws, sign_mac
from tests.integration.test_acme_bad_input import nothing_issued, registered
from tests.unit.protocols.acme.support import BASE, AcmeEnv, Response

pytest_plugins = ["tests.unit.protocols.acme.support"]

PROBLEM = "application/problem+json"
# Each passes str.isdigit() but is no id: a superscript two, Arabic-Indic twelve, a 40-digit number.
NOT_IDS = ["²", "1²", "١٢", "1" * 40, "1" * 19]
RESOURCES = [
    "order/{}",
    "order/{}/finalize",
    "authz/{}",
    "chall/{}",
    "cert/{}",
    "cert/1/{}",
    "acct/{}",
    "acct/{}/orders",
]


def is_problem(resp: Response, status: int, kind: str) -> None:
    assert resp.status == status, (resp.status, resp.body[:300])
    assert resp.headers["Content-Type"] == PROBLEM
    assert resp.problem_type == kind, resp.json


@pytest.mark.parametrize("resource", RESOURCES)
async def test_ids_that_are_not_ascii_digits_are_not_found(acme_sqlite: AcmeEnv, resource: str) -> None:
    """DOS-14: '/acme/order/²' and its kind, signed by an account or not signed at all, are a
    404 malformed problem document (they were a plain-text 500 before any signature check)."""
    client = await registered(acme_sqlite)
    for text in NOT_IDS:
        url = f"{BASE}/{resource.format(text)}"
        is_problem(await client.post(url, None), 404, "malformed")
        unsigned = await client.raw_post(url, b"{}")
        assert unsigned.status in (400, 404) and unsigned.headers["Content-Type"] == PROBLEM, unsigned
    await nothing_issued(acme_sqlite)


@pytest.mark.parametrize("text", NOT_IDS)
async def test_kid_ending_in_a_non_ascii_digit_is_no_account(acme_sqlite: AcmeEnv, text: str) -> None:
    """DOS-14 (and ACME-03): a 'kid' whose account number is not 1 to 18 ASCII digits names no
    account: accountDoesNotExist, not a 500."""
    client = await registered(acme_sqlite)
    client.kid = f"{BASE}/acct/{text}"
    is_problem(await client.new_order(["a.example.com"]), 400, "accountDoesNotExist")
    await nothing_issued(acme_sqlite)


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


async def test_json_limits_hold_for_the_jws_its_header_and_its_payload(acme_sqlite: AcmeEnv) -> None:
    """DOS-13: the one bounded decoder reads the JWS, its protected header, the signed payload and
    an EAB's payload: too deep, duplicate members, NaN, a NUL and UTF-16 are malformed."""
    client = await registered(acme_sqlite)
    url = client.directory["newOrder"]
    protected = {"url": url, "kid": client.kid}
    deep_body = b'{"protected": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    is_problem(await client.raw_post(url, deep_body), 400, "malformed")
    is_problem(await client.raw_post(url, b'{"protected": "a", "protected": "b"}'), 400, "malformed")
    utf16 = sign_jws(client.key, b"{}", {**protected, "nonce": await client.fresh_nonce()}).decode().encode("utf-16")
    is_problem(await client.raw_post(url, utf16), 400, "malformed")
    for payload in (
        json.dumps({"identifiers": nested(20)}).encode(),
        b'{"identifiers": [], "identifiers": []}',
        b'{"identifiers": NaN}',
        b'{"identifiers": [{"type": "dns", "value": "a\\u0000.example.com"}]}',
    ):
        is_problem(await client.post(url, payload), 400, "malformed")
    newcomer = acme_sqlite.client()
    await newcomer.load_directory()
    eab = sign_mac(
        b"k" * 32, json.dumps(nested(40)).encode(), {"kid": "eab-1", "url": newcomer.directory["newAccount"]}
    )
    resp = await newcomer.register(externalAccountBinding=eab)
    is_problem(resp, 400, "malformed")
    assert "externalAccountBinding" in resp.json["detail"]
    assert jwk_from_key(newcomer.key.public_key())  # the key itself was fine
    await nothing_issued(acme_sqlite)
