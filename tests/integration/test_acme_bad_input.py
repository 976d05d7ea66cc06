"""Bad input (docs/reliability.md, ACME-01 to ACME-12): each gets the right ACME error type and nothing is issued."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from ca.store.repositories import CertificateFilter
from protocols.acme.b64 import b64e
from protocols.acme.jwk import jwk_from_key
from protocols.acme.jws import sign_jws
from server.app import CA
from tests.unit.protocols.acme.support import AcmeClient, AcmeEnv, make_csr

pytest_plugins = ["tests.unit.protocols.acme.support"]


async def nothing_issued(env: AcmeEnv) -> None:
    ca = env.app[CA]
    assert await ca.certificates.list(CertificateFilter(protocol="acme")) == []
    assert all(i.signing_attempts == 0 for i in ca.issuers.values())


async def registered(env: AcmeEnv) -> AcmeClient:
    client = env.client()
    resp = await client.register()
    assert resp.status == 201, resp.body
    return client


def tamper(body: bytes, **changes: Any) -> bytes:
    obj = json.loads(body)
    obj.update(changes)
    return json.dumps(obj).encode()


async def test_signature_that_does_not_verify(acme_sqlite: AcmeEnv) -> None:
    """ACME-06: a JWS whose signature does not verify is malformed; its nonce is not spent."""
    client = await registered(acme_sqlite)
    nonce = await client.fresh_nonce()
    url = client.directory["newOrder"]
    body = sign_jws(
        client.key,
        b'{"identifiers":[{"type":"dns","value":"a.example.com"}]}',
        {"nonce": nonce, "url": url, "kid": client.kid},
    )
    other = sign_jws(
        client.key,
        b'{"identifiers":[{"type":"dns","value":"b.example.com"}]}',
        {"nonce": nonce, "url": url, "kid": client.kid},
    )
    forged = tamper(body, payload=json.loads(other)["payload"])
    resp = await client.raw_post(url, forged)
    assert resp.status == 400 and resp.problem_type == "malformed"
    assert "signature" in resp.json["detail"]
    assert "Replay-Nonce" in resp.headers
    resp = await client.raw_post(url, body)  # the untouched request still has an unspent nonce
    assert resp.status == 201
    await nothing_issued(acme_sqlite)


async def test_replayed_nonce_gets_bad_nonce_and_a_fresh_one(acme_sqlite: AcmeEnv) -> None:
    """ACME-04."""
    client = await registered(acme_sqlite)
    nonce = await client.fresh_nonce()
    url = client.kid
    assert url is not None
    first = await client.post(url, None, nonce=nonce)
    assert first.status == 200
    again = await client.post(url, None, nonce=nonce)
    assert again.status == 400 and again.problem_type == "badNonce"
    assert again.headers["Replay-Nonce"] and again.headers["Replay-Nonce"] != nonce
    for bad in ("", "short", "!" * 22):
        resp = await client.post(url, None, nonce=bad)
        assert resp.problem_type == "badNonce", bad
    missing = sign_jws(client.key, None, {"url": url, "kid": client.kid})
    resp = await client.raw_post(url, missing)
    assert resp.problem_type == "badNonce"
    await nothing_issued(acme_sqlite)


async def test_url_that_differs_from_the_request(acme_sqlite: AcmeEnv) -> None:
    """ACME-05."""
    client = await registered(acme_sqlite)
    body = sign_jws(
        client.key,
        b'{"identifiers":[{"type":"dns","value":"a.example.com"}]}',
        {"nonce": await client.fresh_nonce(), "url": client.directory["revokeCert"], "kid": client.kid},
    )
    resp = await client.raw_post(client.directory["newOrder"], body)
    assert resp.status == 400 and resp.problem_type == "malformed" and "url" in resp.json["detail"]
    await nothing_issued(acme_sqlite)


def key_change_body(client: AcmeClient, new_key: Any) -> bytes:
    """The inner JWS of a keyChange from `client`'s current key to `new_key` (RFC 8555 §7.3.5)."""
    url = client.directory["keyChange"]
    old = jwk_from_key(client.key.public_key())
    inner = json.dumps({"account": client.kid, "oldKey": old}).encode()
    return sign_jws(new_key, inner, {"url": url, "jwk": jwk_from_key(new_key.public_key())})


async def test_key_change_to_the_current_key_or_a_taken_one(acme_sqlite: AcmeEnv) -> None:
    """ACME-05: a key change to the account's own current key is malformed and says so (it used to
    claim another account held the key); a key another account does hold is still a 409 conflict
    naming that account; the account keeps its key either way."""
    client = await registered(acme_sqlite)
    url = client.directory["keyChange"]
    resp = await client.post(url, key_change_body(client, client.key))
    assert resp.status == 400 and resp.problem_type == "malformed", resp.body
    assert "the new key is the account's current key" in resp.json["detail"]
    assert "another account" not in resp.json["detail"]
    other = await registered(acme_sqlite)
    resp = await client.post(url, key_change_body(client, other.key))
    assert resp.status == 409 and resp.problem_type == "conflict"
    assert "another account already uses the new key" in resp.json["detail"]
    assert resp.headers["Location"] == other.kid
    assert (await client.post(client.kid or "", None)).status == 200  # the old key still signs
    await nothing_issued(acme_sqlite)


@pytest.mark.parametrize(
    "kid",
    [
        "https://127.0.0.1:8443/acme/acct/999999",
        "https://evil.example/acme/acct/1",
        "https://127.0.0.1:8443/acme/acct/abc",
    ],
)
async def test_unknown_kid(acme_sqlite: AcmeEnv, kid: str) -> None:
    """ACME-03."""
    client = await registered(acme_sqlite)
    client.kid = kid
    resp = await client.new_order(["a.example.com"])
    assert resp.status == 400 and resp.problem_type == "accountDoesNotExist"
    await nothing_issued(acme_sqlite)


async def test_jwk_and_kid_together_and_on_the_wrong_endpoint(acme_sqlite: AcmeEnv) -> None:
    """ACME-03."""
    client = await registered(acme_sqlite)
    resp = await client.post(
        client.directory["newOrder"],
        {"identifiers": [{"type": "dns", "value": "a.example.com"}]},
        extra={"jwk": jwk_from_key(client.key.public_key())},
    )
    assert resp.status == 400 and resp.problem_type == "malformed" and "both" in resp.json["detail"]
    resp = await client.post(
        client.directory["newOrder"], {"identifiers": [{"type": "dns", "value": "a.example.com"}]}, use_jwk=True
    )
    assert resp.problem_type == "malformed" and "kid" in resp.json["detail"]
    resp = await client.post(client.directory["newAccount"], {}, extra={})  # kid on newAccount
    assert resp.problem_type == "malformed"
    await nothing_issued(acme_sqlite)


@pytest.mark.parametrize("alg", ["none", "HS256", "RS512", "PS256", "ES512"])
async def test_refused_algorithms(acme_sqlite: AcmeEnv, alg: str) -> None:
    """ACME-01: badSignatureAlgorithm, listing the accepted algorithms."""
    client = await registered(acme_sqlite)
    header = b64e(
        json.dumps({"alg": alg, "nonce": await client.fresh_nonce(), "url": client.kid, "kid": client.kid}).encode()
    )
    body = json.dumps({"protected": header, "payload": "", "signature": b64e(b"x" * 32)}).encode()
    resp = await client.raw_post(client.kid or "", body)
    assert resp.status == 400 and resp.problem_type == "badSignatureAlgorithm"
    assert resp.json["algorithms"] == ["ES256", "ES384", "RS256", "EdDSA"]


async def test_weak_and_mismatched_account_keys(acme_sqlite: AcmeEnv) -> None:
    """ACME-02: RSA-1024 -> badPublicKey; an ES384 header on a P-256 key -> malformed."""
    client = acme_sqlite.client()
    await client.load_directory()
    client.key = rsa.generate_private_key(65537, 1024)
    resp = await client.register()
    assert resp.status == 400 and resp.problem_type == "badPublicKey"
    client.key = ec.generate_private_key(ec.SECP256R1())
    header = {
        "nonce": await client.fresh_nonce(),
        "url": client.directory["newAccount"],
        "jwk": jwk_from_key(client.key.public_key()),
    }
    from protocols.acme.jws import sign_raw

    protected = b64e(json.dumps({"alg": "ES384", **header}).encode())
    payload = b64e(b"{}")
    sig = sign_raw(client.key, f"{protected}.{payload}".encode(), "ES256")
    resp = await client.raw_post(
        client.directory["newAccount"],
        json.dumps({"protected": protected, "payload": payload, "signature": b64e(sig)}).encode(),
    )
    assert resp.problem_type == "malformed"


async def test_eddsa_and_rsa_accounts_work(acme_sqlite: AcmeEnv) -> None:
    for key in (
        ed25519.Ed25519PrivateKey.generate(),
        rsa.generate_private_key(65537, 2048),
        ec.generate_private_key(ec.SECP384R1()),
    ):
        client = acme_sqlite.client()
        client.key = key
        resp = await client.register()
        assert resp.status == 201, resp.body
        assert (await client.post(client.kid or "", None)).status == 200


async def test_csr_names_differ_from_the_order(acme_sqlite: AcmeEnv) -> None:
    """ACME-09; CORE-12: a CSR for the account key is refused (badCSR)."""
    client = await registered(acme_sqlite)
    order = (await client.new_order(["a.example.com"])).json
    await client.authorize(order, acme_sqlite)
    for names in (["b.example.com"], ["a.example.com", "b.example.com"]):
        csr, _ = make_csr(names)
        resp = await client.finalize(order, csr)
        assert resp.status == 400 and resp.problem_type == "badCSR", resp.body
    csr, _ = make_csr(["a.example.com"], key=client.key)
    resp = await client.finalize(order, csr)
    assert resp.problem_type == "badCSR" and "account key" in resp.json["detail"]
    await nothing_issued(acme_sqlite)


@pytest.mark.parametrize("whose", ["issuer", "ra"])
async def test_csr_for_a_ca_or_ra_key(acme_sqlite: AcmeEnv, whose: str) -> None:
    """CORE-12: the issuing CA's or the RA's key in a finalize CSR is badCSR (the core's check);
    nothing is issued and the order stays ready for a CSR with a key of the client's own."""
    ca = acme_sqlite.app[CA]
    owner = ca.issuers[ca.default_issuer] if whose == "issuer" else next(iter(ca.ras.values()))
    client = await registered(acme_sqlite)
    order = (await client.new_order(["own.example.com"])).json
    await client.authorize(order, acme_sqlite)
    csr, _ = make_csr(["own.example.com"], key=owner.signer.private_key())
    resp = await client.finalize(order, csr)
    assert resp.status == 400 and resp.problem_type == "badCSR", resp.body
    assert "own keys" in resp.json["detail"]
    await nothing_issued(acme_sqlite)
    csr, _ = make_csr(["own.example.com"])
    assert (await client.finalize(order, csr)).status == 200


async def test_csr_key_the_profile_forbids(acme_sqlite: AcmeEnv) -> None:
    client = await registered(acme_sqlite)
    order = (await client.new_order(["a.example.com"])).json
    await client.authorize(order, acme_sqlite)
    csr, _ = make_csr(["a.example.com"], key=ed25519.Ed25519PrivateKey.generate())
    resp = await client.finalize(order, csr)
    assert resp.status == 400 and resp.problem_type in ("badPublicKey", "badCSR"), resp.body
    assert "ed25519" in resp.json["detail"]
    await nothing_issued(acme_sqlite)
    csr, _ = make_csr(["a.example.com"])  # the order stayed ready for a good CSR
    assert (await client.finalize(order, csr)).status == 200


async def test_order_for_a_name_the_profile_denies(acme_sqlite: AcmeEnv) -> None:
    """ACME-10: denied and badly cased names, more than 100 identifiers and an unsupported
    identifier type are refused with subproblems per identifier; nothing is issued."""
    client = await registered(acme_sqlite)
    resp = await client.new_order(["ok.example.com", "host.example.invalid", "UPPER.example.com"])
    assert resp.status == 400 and resp.problem_type == "rejectedIdentifier"
    subs = {s["identifier"]["value"] for s in resp.json["subproblems"]}
    assert subs == {"host.example.invalid", "UPPER.example.com"}
    resp = await client.new_order([f"n{i}.example.com" for i in range(101)])
    assert resp.problem_type == "rejectedIdentifier"
    resp = await client.post(client.directory["newOrder"], {"identifiers": [{"type": "email", "value": "a@b.c"}]})
    assert resp.problem_type == "unsupportedIdentifier"
    await nothing_issued(acme_sqlite)


async def test_finalize_before_ready(acme_sqlite: AcmeEnv) -> None:
    """ACME-09: orderNotReady."""
    client = await registered(acme_sqlite)
    order = (await client.new_order(["a.example.com"])).json
    csr, _ = make_csr(["a.example.com"])
    resp = await client.finalize(order, csr)
    assert resp.status == 403 and resp.problem_type == "orderNotReady"
    await nothing_issued(acme_sqlite)


async def test_finalize_twice_issues_once(acme_sqlite: AcmeEnv) -> None:
    client = await registered(acme_sqlite)
    order = (await client.new_order(["a.example.com"])).json
    await client.authorize(order, acme_sqlite)
    csr, _ = make_csr(["a.example.com"])
    assert (await client.finalize(order, csr)).status == 200
    again = await client.finalize(order, csr)
    assert again.status == 403 and again.problem_type == "orderNotReady"
    ca = acme_sqlite.app[CA]
    assert len(await ca.certificates.list(CertificateFilter(protocol="acme"))) == 1


async def test_body_over_the_size_limit(acme_sqlite: AcmeEnv) -> None:
    """413 in ACME's words (a problem document), by Content-Length and chunked alike."""
    client = await registered(acme_sqlite)
    resp = await client.raw_post(client.directory["newOrder"], b"{" + b" " * (70 * 1024) + b"}")
    assert resp.status == 413 and resp.problem_type == "malformed", resp.body

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(70):
            yield b" " * 1024

    chunked = await acme_sqlite.http.post(
        "/acme/new-order", data=chunks(), headers={"Content-Type": "application/jose+json"}
    )
    assert chunked.status == 413 and chunked.headers["Content-Type"] == "application/problem+json"
    assert (await chunked.json())["type"] == "urn:ietf:params:acme:error:malformed"
    await nothing_issued(acme_sqlite)


async def test_unknown_resources_and_methods_are_problem_documents(acme_sqlite: AcmeEnv) -> None:
    """No such path under /acme (404) and a method no route takes (405, with Allow): problem
    documents too, so a client's error handling sees ACME words everywhere (RFC 8555 §6.7)."""
    for method, path, status in (
        ("POST", "/acme/no-such-thing", 404),
        ("GET", "/acme/order/1/extra", 404),
        ("PATCH", "/acme/new-order", 405),
    ):
        resp = await acme_sqlite.http.request(method, path, data=b"{}")
        assert resp.status == status and resp.headers["Content-Type"] == "application/problem+json", (method, path)
        body = await resp.json()
        assert body["type"] == "urn:ietf:params:acme:error:malformed" and body["status"] == status
        if status == 405:
            assert "POST" in resp.headers["Allow"]
    assert (await acme_sqlite.http.get("/no-such-thing")).content_type == "text/plain"  # outside /acme: unchanged


async def test_wrong_content_type(acme_sqlite: AcmeEnv) -> None:
    """ACME-07."""
    client = await registered(acme_sqlite)
    body = sign_jws(client.key, None, {"nonce": await client.fresh_nonce(), "url": client.kid, "kid": client.kid})
    resp = await client.raw_post(client.kid or "", body, content_type="application/json")
    assert resp.status == 415 and resp.problem_type == "malformed"


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"protected": "a", "payload": "", "signature": "x"}',
        b'{"protected": "e30=", "payload": "", "signature": ""}',
        b'{"protected": "e30", "payload": "!!", "signature": ""}',
        b'{"signatures": [], "payload": ""}',
    ],
)
async def test_malformed_json_and_base64url(acme_sqlite: AcmeEnv, body: bytes) -> None:
    """ACME-06: malformed JSON, padded or foreign base64url, general serialization."""
    client = await registered(acme_sqlite)
    resp = await client.raw_post(client.directory["newOrder"], body)
    assert resp.status == 400 and resp.problem_type == "malformed", resp.body
    assert "Replay-Nonce" in resp.headers
    await nothing_issued(acme_sqlite)


async def test_post_as_get_rules(acme_sqlite: AcmeEnv) -> None:
    """ACME-08: a payload where POST-as-GET is due; GET where POST-as-GET is required."""
    client = await registered(acme_sqlite)
    resp = await client.new_order(["a.example.com"])
    order_url = resp.headers["Location"]
    resp = await client.post(order_url, {"status": "valid"})
    assert resp.problem_type == "malformed"
    get = await acme_sqlite.http.get(client.path(order_url))
    assert get.status == 405


async def test_non_post_methods_on_post_as_get_resources(acme_sqlite: AcmeEnv) -> None:
    """ACME-08: GET/PUT/DELETE/HEAD on every POST-only resource: 405, Allow: POST, a malformed
    problem document and a fresh nonce; directory, newNonce and renewalInfo stay GET-able."""
    client = await registered(acme_sqlite)
    order = await client.new_order(["get.example.com"])
    order_url = order.headers["Location"]
    authz_url = order.json["authorizations"][0]
    chall_url = (await client.post(authz_url, None)).json["challenges"][0]["url"]
    urls = [
        client.kid or "",
        (client.kid or "") + "/orders",
        order_url,
        order.json["finalize"],
        authz_url,
        chall_url,
        client.directory["newAccount"],
        client.directory["newOrder"],
        client.directory["revokeCert"],
        client.directory["keyChange"],
        client.directory["newAccount"].replace("/new-account", "/cert/1"),
        client.directory["newAccount"].replace("/new-account", "/tls-server/new-order"),
    ]
    http = acme_sqlite.http
    for url in urls:
        for method in ("GET", "PUT", "DELETE"):
            resp = await http.request(method, client.path(url))
            assert resp.status == 405, (method, url, resp.status)
            assert resp.headers["Allow"] == "POST"
            assert resp.headers["Content-Type"] == "application/problem+json"
            assert len(resp.headers["Replay-Nonce"]) == 22
            problem = await resp.json()
            assert problem["type"] == "urn:ietf:params:acme:error:malformed"
            assert problem["status"] == 405 and "POST-as-GET" in problem["detail"]
        head = await http.head(client.path(url))
        assert head.status == 405 and head.headers["Allow"] == "POST"
    # The nonce a 405 hands out is good for the next request.
    nonce = (await http.get(client.path(order_url))).headers["Replay-Nonce"]
    assert (await client.post(order_url, None, nonce=nonce)).status == 200
    # POST still reaches the resource; GET-able endpoints are unchanged.
    assert (await client.post(authz_url, None)).status == 200
    assert (await http.get("/acme/directory")).status == 200
    assert (await http.get("/acme/new-nonce")).status == 204
    assert (await http.head("/acme/new-nonce")).status == 200
    assert (await http.get("/acme/renewal-info/AAAA.AQ")).status == 404
    await nothing_issued(acme_sqlite)


async def test_revocation_rules(acme_sqlite: AcmeEnv) -> None:
    """ACME-12: another account, bad reason code, the certificate's own key."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    owner = await registered(acme_sqlite)
    _, pem, cert_key = await owner.issue(acme_sqlite, ["r.example.com"])
    der = x509.load_pem_x509_certificates(pem.encode())[0].public_bytes(Encoding.DER)
    stranger = await registered(acme_sqlite)
    resp = await stranger.post(stranger.directory["revokeCert"], {"certificate": b64e(der)})
    assert resp.status == 403 and resp.problem_type == "unauthorized"
    for reason in (2, 6, 7, 8, 10, 11):
        resp = await owner.post(owner.directory["revokeCert"], {"certificate": b64e(der), "reason": reason})
        assert resp.problem_type == "badRevocationReason", reason
    by_key = acme_sqlite.client()
    by_key.directory = owner.directory
    resp = await by_key.post(
        owner.directory["revokeCert"], {"certificate": b64e(der), "reason": 1}, key=cert_key, use_jwk=True
    )
    assert resp.status == 200, resp.body


async def test_challenge_start_rules_in_the_nonce_transaction(acme_sqlite: AcmeEnv) -> None:
    """ACME-08/ACME-09 (RFC 8555 §7.5.1, §7.1.6): a challenge read never starts it; another
    account's response is refused and starts nothing; a malformed response spends the nonce and
    starts nothing; once one challenge decided, another challenge of the same authorization
    cannot be started."""
    owner = await registered(acme_sqlite)
    stranger = await registered(acme_sqlite)
    order = (await owner.new_order(["chal.example.com"])).json
    authz_url = order["authorizations"][0]
    challenges = {c["type"]: c for c in (await owner.post(authz_url, None)).json["challenges"]}
    http01, dns01 = challenges["http-01"], challenges["dns-01"]

    read = await owner.post(http01["url"], None)
    assert read.status == 200 and read.json["status"] == "pending"
    refused = await stranger.post(http01["url"], {})
    assert refused.status == 403 and refused.problem_type == "unauthorized"
    bad = await owner.post(http01["url"], b"[]")  # a JSON array is not a challenge response
    assert bad.status == 400 and bad.problem_type == "malformed"
    assert "Replay-Nonce" in bad.headers
    assert (await owner.post(http01["url"], None)).json["status"] == "pending"

    acme_sqlite.http01.tokens[http01["token"]] = owner.key_authorization(http01["token"])
    started = await owner.post(http01["url"], {})
    assert started.status == 200 and started.json["status"] in ("processing", "valid")
    done = await owner.poll(authz_url, ("valid", "invalid"))
    assert done.json["status"] == "valid"
    late = await owner.post(dns01["url"], {})
    assert late.status == 400 and late.problem_type == "malformed"  # the authorization is valid
    again = await owner.post(http01["url"], {})
    assert again.status == 200 and again.json["status"] == "valid"
