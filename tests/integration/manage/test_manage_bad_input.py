"""The management API against bad input, through the served app on SQLite and PostgreSQL: one
request's fault stays its own (ST-21), every body is checked against its schema (OPS-12) and
the JSON limits (DOS-13), ids are parsed strictly (DOS-14), and every refusal is a problem
document. One app per store serves all the cases (a fresh one per case cost seconds each)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from ca.service import CertificateAuthority
from ca.store.repositories import CertificateFilter
from tests.helpers import make_csr
from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import problem
from tests.operator_tokens import bearer, make_token


def enroll_body(name: str, **extra: Any) -> dict[str, Any]:
    csr, _ = make_csr([name])
    return {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server", **extra}


async def stored(ca: CertificateAuthority) -> list[Any]:
    return await ca.certificates.list(CertificateFilter(protocol="api", limit=10_000))


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


POISONED_INVENTORY: list[Any] = [
    {"owner": {"name": "x"}},  # an object where text belongs
    {"owner": "o" * 300},  # longer than the column
    {"owner": "o" * 100_000},  # longer than any string the decoder takes
    {"owner": "nul\u0000inside"},  # PostgreSQL cannot store it
    "not-an-object",  # a string where the object belongs
]

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

# Not JSON, or past the decoder's limits / JSON breaking the body's schema.
REFUSED = ("urn:tetra:problem:malformed", "urn:tetra:problem:invalid-body")
BAD_IDS = ["²", "١٢", "1" * 40, "12a", "-1", "+1", "1_0", " 1"]


async def test_bad_input_is_refused_as_problems_and_stores_nothing(serve: Serve, ca_dir: Path, db_url: str) -> None:
    """OPS-12, DOS-13, DOS-14, ST-21: 45 concurrent enrolments, five poisoned in the inventory,
    fail alone (the 40 others are issued and only they are stored); each body the schema or
    the JSON limits refuse is a 400 problem naming the member or the limit, and stores
    nothing; a revocation body of the wrong shape leaves its certificate unrevoked; ids of
    any other script or length are 400."""
    client, ca = await serve(manage_config(ca_dir, db_url))
    auth = bearer(await make_token(ca, "administrator"))

    bodies = [enroll_body(f"legit{i}.example.com", inventory={"owner": f"team-{i}"}) for i in range(40)]
    for index, inventory in enumerate(POISONED_INVENTORY):
        bodies.insert(index * 9 + 2, enroll_body(f"poison{index}.example.com", inventory=inventory))

    async def post(body: dict[str, Any]) -> Any:
        return await client.post("/api/v1/enroll", data=json.dumps(body), headers=auth)

    for body, resp in zip(bodies, await asyncio.gather(*(post(b) for b in bodies)), strict=True):
        if body["inventory"] in POISONED_INVENTORY:
            assert resp.status == 400, await resp.text()
            answer = await resp.json(content_type=None)
            assert answer["type"] in REFUSED and "o" * 300 not in answer["detail"], answer
        else:
            assert resp.status == 201, await resp.text()
    assert sorted(r.owner for r in await stored(ca)) == sorted(f"team-{i}" for i in range(40))

    for case, data in BAD_ENROLL_BODIES:
        resp = await client.post("/api/v1/enroll", data=data, headers=auth)
        assert resp.status == 400, (case, await resp.text())
        answer = await resp.json(content_type=None)
        assert answer["type"] in REFUSED, (case, answer)
        assert len(answer["detail"]) < 200, (case, answer)
    assert len(await stored(ca)) == 40

    issued = await client.post("/api/v1/enroll", json=enroll_body("r.example.com"), headers=auth)
    serial = (await issued.json())["serial"]
    for case, change in BAD_REVOKE_BODIES:
        data = change if isinstance(change, bytes) else json.dumps({"serial": serial, **change}).encode()
        resp = await client.post("/api/v1/revoke", data=data, headers=auth)
        assert resp.status == 400, (case, await resp.text())
    assert {r.status for r in await stored(ca)} == {"issued"}

    for text in BAD_IDS:
        for path in (f"/api/v1/requests/{text}", f"/api/v1/certificates/{text}"):
            await problem(await client.get(path, headers=auth), 400, "malformed")
