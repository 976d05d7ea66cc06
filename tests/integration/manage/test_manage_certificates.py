"""/api/v1/certificates through the served app: a certificate's whole life (request, search,
label, download, renew, reissue, revoke), each change audited under the acting user (OPS-07),
hostile text returned as JSON data (OPS-09), lists paged by cursor, a key made by the CA and
handed back once as PKCS#12, and another team's certificates out of sight (OPS-02, on SQLite
and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from tests.helpers import make_csr
from tests.integration.manage.conftest import Client, Serve, manage_config
from tests.integration.manage.manage_support import add_profile, audit_rows, last_seq, problem
from tests.operator_tokens import bearer, make_token

HOSTILE = '<script>alert("owner")</script>'


def csr_pem(name: str) -> str:
    csr, _ = make_csr([name])
    return csr.public_bytes(Encoding.PEM).decode()


async def issue(client: Client, auth: dict[str, str], name: str, **extra: Any) -> dict[str, Any]:
    resp = await client.post(
        "/api/v1/certificates", json={"profile": "tls-server", "csr": csr_pem(name), **extra}, headers=auth
    )
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def find(client: Client, auth: dict[str, str], name: str) -> dict[str, Any]:
    resp = await client.get("/api/v1/certificates", params={"search": name}, headers=auth)
    assert resp.status == 200, await resp.text()
    (item,) = (await resp.json())["items"]
    return item  # type: ignore[no-any-return]


async def test_a_certificate_life_through_the_api(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """OPS-07: request, label, renew, reissue and revoke each write audit events, all with
    actor user:alice (a label or a revocation exactly one), and the chain verifies. OPS-09: an
    owner and a subject holding markup come back as the same text in application/json with
    nosniff."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    alice = bearer(await make_token(ca, "administrator", name="alice"))
    start = await last_seq(ca)

    issued = await issue(client, alice, "www.example.com", owner=HOSTILE, team="web", application="shop")
    resp = await client.get("/api/v1/certificates", params={"search": "www.example.com"}, headers=alice)
    assert resp.content_type == "application/json" and resp.headers["X-Content-Type-Options"] == "nosniff"
    record = await find(client, alice, "www.example.com")
    assert record["owner"] == HOSTILE and record["team"] == "web" and record["serial"] == issued["serial"]
    assert HOSTILE.encode() not in await resp.read()  # JSON escapes the quotes: never raw markup
    item = f"/api/v1/certificates/{record['id']}"

    seq = await last_seq(ca)
    resp = await client.patch(item, json={"owner": "bob", "tags": ["prod", "eu"]}, headers=alice)
    assert resp.status == 200, await resp.text()
    assert [(r.action, r.actor) for r in await audit_rows(ca, seq)] == [("inventory.edited", "user:alice")]
    labelled = await resp.json()
    assert (labelled["owner"], sorted(labelled["tags"]), labelled["team"]) == ("bob", ["eu", "prod"], "web")
    await problem(await client.patch(item, json={}, headers=alice), 400, "invalid-body")

    pem = await client.get(item + "/download", headers=alice)
    assert pem.status == 200 and pem.content_type == "application/pem-certificate-chain"
    chain = x509.load_pem_x509_certificates(await pem.read())
    assert len(chain) == 2 and chain[1].subject == chain[0].issuer
    der = await client.get(item + "/download", params={"format": "der"}, headers=alice)
    assert x509.load_der_x509_certificate(await der.read()) == chain[0]
    p7 = await client.get(item + "/download", params={"format": "pkcs7"}, headers=alice)
    assert set(pkcs7.load_der_pkcs7_certificates(await p7.read())) == set(chain)  # a SET: DER sorts it
    await problem(await client.get(item + "/download", params={"format": "pfx"}, headers=alice), 400, "invalid-query")

    resp = await client.post(item + "/renew", headers=alice)
    assert resp.status == 201, await resp.text()
    renewed = await resp.json()
    assert renewed["serial"] != issued["serial"]
    renewed_record = await _by_serial(client, alice, renewed["serial"])
    assert renewed_record["replaces"] == record["id"] and renewed_record["owner"] == "bob"
    assert (await _by_serial(client, alice, issued["serial"]))["status"] == "valid"  # renewal keeps the old

    resp = await client.post(f"/api/v1/certificates/{renewed_record['id']}/reissue", headers=alice)
    assert resp.status == 201, await resp.text()
    reissued = await _by_serial(client, alice, (await resp.json())["serial"])
    old = await _by_serial(client, alice, renewed["serial"])
    assert (old["status"], old["revocation_reason"]) == ("revoked", "superseded")
    assert reissued["replaces"] == renewed_record["id"]

    seq = await last_seq(ca)
    resp = await client.post(item + "/revoke", json={"reason": "keyCompromise"}, headers=alice)
    assert resp.status == 200 and (await resp.json())["reason"] == "keyCompromise"
    assert [(r.action, r.actor) for r in await audit_rows(ca, seq)] == [("certificate.revoked", "user:alice")]
    await problem(await client.post(item + "/revoke", json={"reason": "keyCompromise"}, headers=alice), 409, "conflict")
    await problem(await client.post(item + "/revoke", json={"reason": []}, headers=alice), 400, "invalid-body")

    csr, _ = make_csr(["device.example.com"], cn=HOSTILE)
    device = {"profile": "device", "csr": csr.public_bytes(Encoding.PEM).decode()}
    assert (await client.post("/api/v1/certificates", json=device, headers=alice)).status == 201
    marked = await find(client, alice, "device.example.com")
    expected = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE)]).rfc4514_string()
    assert marked["subject"] == expected  # as data: the subject's RFC 4514 text, in JSON

    rows = await audit_rows(ca, start)
    actions = [row.action for row in rows]
    assert {"inventory.edited", "certificate.revoked"} <= set(actions)
    assert actions.count("certificate.revoked") == 2  # the reissue's superseded and the keyCompromise
    assert {row.actor for row in rows} == {"user:alice"}
    assert (await ca.audit.verify()).ok


async def _by_serial(client: Client, auth: dict[str, str], serial: str) -> dict[str, Any]:
    resp = await client.get("/api/v1/certificates", params={"limit": "1000"}, headers=auth)
    (found,) = [r for r in (await resp.json())["items"] if r["serial"] == serial]
    return found  # type: ignore[no-any-return]


async def test_lists_page_by_cursor_and_refuse_unknown_filters(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """Paging: limit and the opaque cursor walk every item once, in id order; a forged cursor,
    an unknown or repeated parameter, a limit out of range: 400 problems naming it."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    auth = bearer(await make_token(ca, "administrator"))
    for n in range(3):
        await issue(client, auth, f"page{n}.example.com")
    seen: list[int] = []
    params = {"limit": "2", "profile": "tls-server", "protocol": "api"}
    while True:
        resp = await client.get("/api/v1/certificates", params=params, headers=auth)
        body = await resp.json()
        seen += [item["id"] for item in body["items"]]
        if body["next"] is None:
            break
        params["cursor"] = body["next"]
    assert len(seen) == 3 and seen == sorted(set(seen))
    for query, named in [
        ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor"),
        ({"colour": "red"}, "colour"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "sparkly"}, "status"),
    ]:
        body = await problem(await client.get("/api/v1/certificates", params=query, headers=auth), 400, "invalid-query")
        assert named in body["detail"], body
    body = await problem(await client.get("/api/v1/certificates?team=a&team=b", headers=auth), 400, "invalid-query")
    assert "more than once" in body["detail"]


async def test_a_key_made_by_the_ca_comes_back_once_as_pkcs12(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """A server-side key: the PKCS#12 opens with the passphrase given and holds the key of the
    certificate; the key is nowhere in the database. Without a passphrase, or on a profile that
    does not make keys, nothing is issued."""
    add_profile(ca_dir, "keygen", base="device", keygen=True)
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    auth = bearer(await make_token(ca, "administrator"))
    order = {"profile": "keygen", "key": "ec-p256", "names": ["dev1.example.com"], "subject": "CN=dev1.example.com"}
    await problem(await client.post("/api/v1/certificates", json=order, headers=auth), 400, "invalid-body")
    on_tls = {**order, "profile": "tls-server", "passphrase": "correct horse"}
    await problem(await client.post("/api/v1/certificates", json=on_tls, headers=auth), 403, "policy")

    resp = await client.post("/api/v1/certificates", json={**order, "passphrase": "correct horse"}, headers=auth)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    bundle = pkcs12.load_pkcs12(base64.b64decode(body["pkcs12"]), b"correct horse")
    assert bundle.key is not None and bundle.cert is not None
    assert bundle.cert.certificate.public_key() == bundle.key.public_key()
    assert bundle.cert.certificate == x509.load_pem_x509_certificate(body["certificate"].encode())
    assert isinstance(bundle.key, ec.EllipticCurvePrivateKey)
    secret = bundle.key.private_numbers().private_value.to_bytes(32, "big")
    database = Path(sqlite_url.removeprefix("sqlite:///"))
    with sqlite3.connect(database) as db:  # the key's secret scalar is in no column of any row
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):  # table names from sqlite_master itself
                assert not any(isinstance(v, bytes) and secret in v for v in row), table
    assert json.dumps(body).count("PRIVATE KEY") == 0


async def test_another_teams_certificate_is_not_there(serve: Serve, ca_dir: Path, db_url: str) -> None:
    """OPS-02: an RA officer of team db (allowed all of it, for its own team) neither lists,
    reads, downloads, labels, renews, reissues nor revokes team web's certificate: each is the
    404 of a certificate that does not exist, and nothing changes. A requester may not give
    its certificate to a team it is not in."""
    client, ca = await serve(manage_config(ca_dir, db_url))
    web = bearer(await make_token(ca, "requester", teams=["web"]))
    db = bearer(await make_token(ca, "ra-officer", teams=["db"]))
    admin = bearer(await make_token(ca, "administrator"))
    await issue(client, web, "shop.example.com")
    record = await find(client, admin, "shop.example.com")
    assert record["team"] == "web"
    before = await last_seq(ca)

    resp = await client.get("/api/v1/certificates", headers=db)
    assert (await resp.json())["items"] == []
    absent = await problem(await client.get("/api/v1/certificates/987654", headers=db), 404, "not-found")
    item = f"/api/v1/certificates/{record['id']}"
    for method, path, body in [
        ("GET", item, None),
        ("GET", item + "/download", None),
        ("PATCH", item, {"owner": "mallory"}),
        ("POST", item + "/renew", None),
        ("POST", item + "/reissue", None),
        ("POST", item + "/revoke", {"reason": "keyCompromise"}),
    ]:
        resp = await client.request(method, path, json=body, headers=db)
        assert await problem(resp, 404, "not-found") == absent, (method, path)
    await problem(await client.post("/api/v1/revoke", json={"serial": record["serial"]}, headers=db), 404, "not-found")
    body = await problem(await client.patch(item, json={"team": "db"}, headers=web), 403, "forbidden")
    assert "db" in body["detail"]
    assert await audit_rows(ca, before) == []
    assert await find(client, admin, "shop.example.com") == record
    assert (await find(client, web, "shop.example.com"))["id"] == record["id"]
