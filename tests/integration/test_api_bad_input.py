"""The management API's first calls (enroll, revoke, poll) against bad input, through the app
(pytest-aiohttp) on SQLite and PostgreSQL: one request's fault stays its own (ST-21), every body
is checked against its schema (OPS-12), ids are parsed strictly (DOS-14), and the answer is always
an RFC 9457 problem document: `malformed` for what is not JSON within the decoder's limits,
`invalid-body` for JSON that breaks the endpoint's schema."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.serialization import Encoding

from ca.service import CertificateAuthority
from ca.store.repositories import CertificateFilter
from server.app import CA, build_app
from server.config import ServerConfig
from server.wiring import read_config
from tests.helpers import make_csr
from tests.integration.manage.manage_support import problem
from tests.integration.operator_api import MANAGE_ON_HTTP, serve_on_http

Client = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def api_config(ca_dir: Path, db_url: str) -> ServerConfig:
    return read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": db_url, **MANAGE_ON_HTTP})


def enroll_body(name: str, **extra: Any) -> dict[str, Any]:
    csr, _ = make_csr([name])
    return {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server", **extra}


async def stored(ca: CertificateAuthority) -> list[Any]:
    return await ca.certificates.list(CertificateFilter(protocol="api", limit=10_000))


POISONED: list[tuple[Any, str]] = [  # an inventory, and the problem it gets
    ({"owner": {"name": "x"}}, "invalid-body"),  # an object where text belongs
    ({"owner": "o" * 300}, "invalid-body"),  # longer than the column
    ({"owner": "o" * 100_000}, "malformed"),  # longer than any string the decoder takes
    ({"owner": "nul\u0000inside"}, "malformed"),  # PostgreSQL cannot store it: the decoder refuses NULs
    ("not-an-object", "invalid-body"),  # a string where the object belongs
]
POISONED_INVENTORY = [inventory for inventory, _ in POISONED]


async def test_poisoned_enrolments_fail_alone(aiohttp_client: Client, api_config: ServerConfig) -> None:
    """ST-21, OPS-12: 45 concurrent enrolments, five of them poisoned in the inventory (an object,
    300 and 100,000 characters, a NUL, a string for the object) and spread among the others.
    Every legitimate one is issued (201), each poisoned one gets 400 with a problem document,
    and only the legitimate ones are stored."""
    client, auth = await serve_on_http(aiohttp_client, build_app(api_config))
    bodies = [enroll_body(f"legit{i}.example.com", inventory={"owner": f"team-{i}"}) for i in range(40)]
    for index, inventory in enumerate(POISONED_INVENTORY):
        bodies.insert(index * 9 + 2, enroll_body(f"poison{index}.example.com", inventory=inventory))

    async def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        resp = await client.post("/api/v1/enroll", data=json.dumps(body), headers=auth)
        if resp.status == 201:
            return resp.status, await resp.json()
        return resp.status, await problem(resp, 400, POISONED[POISONED_INVENTORY.index(body["inventory"])][1])

    results = await asyncio.gather(*(post(b) for b in bodies))
    for body, (status, answer) in zip(bodies, results, strict=True):
        if body["inventory"] in POISONED_INVENTORY:
            assert status == 400, (body["inventory"], status, answer)
            assert "o" * 300 not in answer["detail"]
        else:
            assert status == 201, answer
    records = await stored(client.app[CA])
    assert sorted(r.owner for r in records) == sorted(f"team-{i}" for i in range(40))


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


BAD_ENROLL_BODIES: list[tuple[str, bytes]] = [
    ("deep nesting", b'{"csr": ' + b"[" * 50_000 + b"]" * 50_000 + b', "profile": "tls-server"}'),
    ("nested 17 deep", json.dumps({"csr": "x", "profile": "p", "x": nested(16)}).encode()),
    ("string for the body", b'"just a string"'),
    ("string for inventory", json.dumps(enroll_body("a.example.com", inventory="owner=me")).encode()),
    ("object as owner", json.dumps(enroll_body("a.example.com", inventory={"owner": {"x": 1}})).encode()),
    ("100 KB owner", json.dumps(enroll_body("a.example.com", inventory={"owner": "o" * 100_000})).encode()),
    ("256-character owner", json.dumps(enroll_body("a.example.com", inventory={"owner": "o" * 256})).encode()),
    ("number as profile", json.dumps({**enroll_body("a.example.com"), "profile": 7}).encode()),
    ("list as csr", json.dumps({**enroll_body("a.example.com"), "csr": ["-----BEGIN"]}).encode()),
    ("unknown member", json.dumps(enroll_body("a.example.com", owner="me")).encode()),
    ("missing profile", json.dumps({"csr": enroll_body("a.example.com")["csr"]}).encode()),
    ("duplicate member", b'{"csr": "a", "profile": "tls-server", "profile": "email"}'),
    ("NaN", b'{"csr": "a", "profile": "tls-server", "inventory": {"owner": NaN}}'),
    ("lone surrogate", b'{"csr": "a", "profile": "tls-server", "inventory": {"owner": "\\ud800"}}'),
    ("UTF-16", json.dumps(enroll_body("a.example.com")).encode("utf-16")),
    ("not JSON", b"{nope"),
]
# Refused by the JSON decoder's limits ("malformed"); the others are JSON that breaks the schema.
NOT_JSON = {
    "deep nesting",
    "nested 17 deep",
    "100 KB owner",
    "duplicate member",
    "NaN",
    "lone surrogate",
    "UTF-16",
    "not JSON",
}


@pytest.mark.parametrize(("case", "body"), BAD_ENROLL_BODIES, ids=[c for c, _ in BAD_ENROLL_BODIES])
async def test_bad_enroll_bodies_are_400_and_store_nothing(
    aiohttp_client: Client, api_config: ServerConfig, case: str, body: bytes
) -> None:
    """OPS-12, DOS-13: each body the schema or the JSON limits refuse is a 400 problem document
    that names the member or the limit, and nothing is stored (a recursion error or a 503 before)."""
    client, auth = await serve_on_http(aiohttp_client, build_app(api_config))
    resp = await client.post("/api/v1/enroll", data=body, headers=auth)
    answer = await problem(resp, 400, "malformed" if case in NOT_JSON else "invalid-body")
    assert len(answer["detail"]) < 200, answer
    assert await stored(client.app[CA]) == []


BAD_REVOKE_BODIES: list[tuple[str, dict[str, Any] | bytes]] = [
    ("list as reason", {"reason": []}),
    ("object as reason", {"reason": {"code": 1}}),
    ("bool as reason", {"reason": True}),
    ("reason code out of range", {"reason": 11}),
    ("non-ASCII digit reason", {"reason": "²"}),
    ("object as issuer", {"issuer": {}}),
    ("number as serial", {"serial": 12}),
    ("serial of 41 hex digits", {"serial": "1" * 41}),
    ("serial with a non-ASCII digit", {"serial": "1²"}),
    ("serial with 0x", {"serial": "0x1f"}),
    ("unknown member", {"comment": "bye"}),
    ("deep nesting", b"[" * 10_000 + b"]" * 10_000),
]
# Refused before the schema ("malformed"): too deep for the decoder; a string reason (the schema
# takes a name or a code) that names no reason, refused by the core's reason parser.
NOT_VALID_REVOCATION = {"deep nesting", "non-ASCII digit reason"}


@pytest.mark.parametrize(("case", "change"), BAD_REVOKE_BODIES, ids=[c for c, _ in BAD_REVOKE_BODIES])
async def test_bad_revoke_bodies_are_400_and_revoke_nothing(
    aiohttp_client: Client, api_config: ServerConfig, case: str, change: dict[str, Any] | bytes
) -> None:
    """OPS-12, DOS-13: a revocation body with a field of the wrong type or size is a 400 problem
    document (a list as reason, a 40-digit serial, a dict as issuer were a 500 or a 503), and the
    certificate it names stays unrevoked."""
    client, auth = await serve_on_http(aiohttp_client, build_app(api_config))
    issued = await client.post("/api/v1/enroll", json=enroll_body("r.example.com"), headers=auth)
    assert issued.status == 201
    serial = (await issued.json())["serial"]
    body = change if isinstance(change, bytes) else json.dumps({"serial": serial, **change}).encode()
    resp = await client.post("/api/v1/revoke", data=body, headers=auth)
    await problem(resp, 400, "malformed" if case in NOT_VALID_REVOCATION else "invalid-body")
    assert [r.status for r in await stored(client.app[CA])] == ["issued"]


@pytest.mark.parametrize("request_id", ["²", "١٢", "1" * 40, "12a", "-1", "+1", "1_0", " 1"])
async def test_request_ids_are_parsed_strictly(
    aiohttp_client: Client, api_config: ServerConfig, request_id: str
) -> None:
    """DOS-14: request ids written with non-ASCII digits, too many digits or anything but 0-9
    are a 400 problem document (a '²' and a 40-digit id were 500s)."""
    client, auth = await serve_on_http(aiohttp_client, build_app(api_config))
    resp = await client.get(f"/api/v1/requests/{request_id}", headers=auth)
    await problem(resp, 400, "malformed")


async def test_errors_before_any_handler_are_json(aiohttp_client: Client, api_config: ServerConfig) -> None:
    """OPS-12: no such path, a method the path does not take, a body over the limit: a problem
    document too, not aiohttp's plain text."""
    client, auth = await serve_on_http(aiohttp_client, build_app(api_config))
    await problem(await client.get("/api/v1/nope", headers=auth), 404, "not-found")
    await problem(await client.get("/api/v1/enroll", headers=auth), 405, "method-not-allowed")
    huge = await client.post("/api/v1/enroll", data=b"x" * (200 * 1024), headers=auth)
    await problem(huge, 413, "too-large")
