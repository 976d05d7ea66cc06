"""DOS-06: ACME's untrusted input (RFC 8555 §6.2): raw request bodies, JWS objects whose
protected header is damaged member by member but correctly signed, and payloads of any shape
signed by a real account. Every answer is a problem document or a success; nothing is stored
for a refusal; nothing is logged at ERROR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import example, given
from hypothesis import strategies as st

from protocols.acme.b64 import b64e
from protocols.acme.jwk import jwk_from_key
from protocols.acme.jws import alg_for, sign_raw
from tests.fuzz.harness import (
    JSON_VALUES,
    FuzzApp,
    Reply,
    deep_json,
    fuzz_app,
    fuzz_settings,
    id_texts,
    json_object_like,
)
from tests.unit.protocols.acme.support import AcmeClient

ENDPOINTS = ["new-account", "new-order", "new-authz", "revoke-cert", "key-change"]
RESOURCES = ["acct/{}", "acct/{}/orders", "order/{}", "order/{}/finalize", "authz/{}", "chall/{}", "cert/{}"]
PAYLOAD_MEMBERS = [
    "identifiers", "termsOfServiceAgreed", "contact", "status", "csr", "certificate", "reason",
    "account", "oldKey", "notBefore", "notAfter", "externalAccountBinding", "onlyReturnExisting",
    "replaces", "profile", "value", "type",
]  # fmt: skip


def is_problem(reply: Reply) -> bool:
    body = reply.json_object("application/problem+json")
    return body is not None and str(body.get("type", "")).startswith("urn:ietf:params:acme:error:")


def paths() -> st.SearchStrategy[str]:
    resource = st.tuples(st.sampled_from(RESOURCES), id_texts()).map(lambda t: t[0].format(t[1]))
    return st.sampled_from(ENDPOINTS) | resource


def jws(key: ec.EllipticCurvePrivateKey, header: dict[str, Any], payload: bytes | None) -> bytes:
    """A flattened JWS over any header, signed with the key's own algorithm whatever `alg` says."""
    protected = b64e(json.dumps(header).encode())
    body = "" if payload is None else b64e(payload)
    signature = sign_raw(key, f"{protected}.{body}".encode(), alg_for(key))
    return json.dumps({"protected": protected, "payload": body, "signature": b64e(signature)}).encode()


class Acme:
    """A registered account on the fuzzed app, and the URLs the server hands out."""

    def __init__(self, app: FuzzApp) -> None:
        self.app = app
        self.client = AcmeClient(app.http)
        app.run(self.client.register())
        assert self.client.kid is not None
        self.kid = self.client.kid
        self.base = self.kid.split("/acme/")[0] + "/acme/"

    def nonce(self) -> str:
        return str(self.app.run(self.client.fresh_nonce()))

    def post(self, path: str, body: bytes) -> Reply:
        return self.app.request("POST", "/acme/" + path, body, {"Content-Type": "application/jose+json"})


def test_raw_bodies_get_problem_documents(ca_dir: Path) -> None:
    """DOS-06: bytes, JSON of any shape and deeply nested JSON in place of a JWS."""
    with fuzz_app("acme raw bodies", ca_dir) as app:

        @fuzz_settings()
        @given(paths(), st.binary(max_size=600) | deep_json() | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
        @example("new-order", b"[" * 100_000)
        @example("order/\u00b2", b"{}")
        def check(path: str, body: bytes) -> None:
            headers = {"Content-Type": "application/jose+json"}
            app.check(lambda: app.request("POST", "/acme/" + path, body, headers), is_problem)

        check()


def test_damaged_protected_headers_get_problem_documents(ca_dir: Path) -> None:
    """DOS-06, ACME-06: every protected-header member replaced by values of other types and
    lengths (alg, nonce, url, jwk, kid written with other digits), the JWS correctly signed."""
    with fuzz_app("acme protected headers", ca_dir) as app:
        acme = Acme(app)
        key = acme.client.key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        kid_variants = id_texts().map(lambda text: acme.kid.rsplit("/", 1)[0] + "/" + text)
        members: dict[str, st.SearchStrategy[Any]] = {
            "alg": st.sampled_from(["ES256", "none", "HS256", "RS256", "", "ES256 "]) | JSON_VALUES,
            "nonce": st.just("<fresh>") | JSON_VALUES,
            "url": st.just("<url>") | JSON_VALUES,
            "kid": st.just(acme.kid) | kid_variants | JSON_VALUES,
            "jwk": st.just(jwk_from_key(key.public_key())) | JSON_VALUES | json_object_like(["kty", "crv", "x", "y"]),
        }
        header = st.fixed_dictionaries({}, optional=members)

        @fuzz_settings(2)
        @given(paths(), header, st.none() | JSON_VALUES.map(lambda v: json.dumps(v).encode()))
        def check(path: str, fields: dict[str, Any], payload: bytes | None) -> None:
            if fields.get("nonce") == "<fresh>":
                fields["nonce"] = acme.nonce()
            if fields.get("url") == "<url>":
                fields["url"] = acme.base + path
            app.check(lambda: acme.post(path, jws(key, fields, payload)), is_problem)

        check()


def test_signed_payloads_of_any_shape(ca_dir: Path) -> None:
    """DOS-06: a real account's correctly signed requests whose payloads hold anything (the
    resource ids include digits of other scripts): answered, or refused as a problem."""
    with fuzz_app("acme signed payloads", ca_dir) as app:
        acme = Acme(app)
        key = acme.client.key
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        payloads = json_object_like(PAYLOAD_MEMBERS).map(lambda v: json.dumps(v).encode()) | deep_json()

        @fuzz_settings(2)
        @given(paths(), payloads)
        @example("new-order", json.dumps({"identifiers": [{"type": "dns", "value": {"a": 1}}]}).encode())
        @example("key-change", json.dumps({"account": 1, "oldKey": []}).encode())
        def check(path: str, payload: bytes) -> None:
            header = {"alg": alg_for(key), "nonce": acme.nonce(), "url": acme.base + path, "kid": acme.kid}
            app.check(lambda: acme.post(path, jws(key, header, payload)), is_problem)

        check()
