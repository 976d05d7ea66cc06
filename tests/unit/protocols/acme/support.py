"""Test support for ACME: a small async client over aiohttp's test client, and app fixtures.

The client signs with the protocol's own JWS encoder (protocols.acme.jws), and
validation runs for real against loopback responders (interop.acme_helpers).
Integration tests import the fixtures from here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from interop.acme_helpers import Http01Responder, LoopbackDns
from protocols.acme.b64 import b64e
from protocols.acme.challenges import dns01_value
from protocols.acme.jwk import jwk_from_key, parse_jwk
from protocols.acme.jws import SigningKey, sign_jws
from server.wiring import read_config

BASE = "https://127.0.0.1:8443/acme"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def problem_type(self) -> str:
        return str(self.json.get("type", "")).removeprefix("urn:ietf:params:acme:error:")


@dataclass
class AcmeClient:
    http: TestClient[Any, Any]
    key: SigningKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str | None = None
    directory: dict[str, Any] = field(default_factory=dict)
    nonce: str | None = None

    @staticmethod
    def path(url: str) -> str:
        assert url.startswith(BASE), url
        return "/acme" + url[len(BASE) :]

    async def load_directory(self, url: str = BASE + "/directory") -> dict[str, Any]:
        resp = await self.http.get(self.path(url))
        assert resp.status == 200
        self.directory = await resp.json()
        return self.directory

    async def fresh_nonce(self) -> str:
        resp = await self.http.head("/acme/new-nonce")
        assert resp.status == 200
        assert resp.headers.get("Content-Length") == "0"  # else clients drop the keep-alive connection
        return resp.headers["Replay-Nonce"]

    async def raw_post(
        self, url: str, body: bytes, content_type: str = "application/jose+json", path: str | None = None
    ) -> Response:
        resp = await self.http.post(path or self.path(url), data=body, headers={"Content-Type": content_type})
        data = await resp.read()
        if "Replay-Nonce" in resp.headers:
            self.nonce = resp.headers["Replay-Nonce"]
        return Response(resp.status, dict(resp.headers), data)

    async def post(
        self,
        url: str,
        payload: dict[str, Any] | bytes | None,
        *,
        use_jwk: bool = False,
        key: SigningKey | None = None,
        extra: dict[str, Any] | None = None,
        nonce: str | None = None,
        retry_bad_nonce: bool = True,
    ) -> Response:
        key = key or self.key
        given = nonce if nonce is not None else self.nonce or await self.fresh_nonce()
        protected: dict[str, Any] = {"nonce": given, "url": url}
        if use_jwk or self.kid is None:
            protected["jwk"] = jwk_from_key(key.public_key())
        else:
            protected["kid"] = self.kid
        protected.update(extra or {})
        raw = payload if isinstance(payload, bytes) else None if payload is None else json.dumps(payload).encode()
        self.nonce = None
        resp = await self.raw_post(url, sign_jws(key, raw, protected))
        if resp.status == 400 and retry_bad_nonce and nonce is None and resp.problem_type == "badNonce":
            return await self.post(url, payload, use_jwk=use_jwk, key=key, extra=extra, retry_bad_nonce=False)
        return resp

    async def register(self, **fields: Any) -> Response:
        if not self.directory:
            await self.load_directory()
        resp = await self.post(self.directory["newAccount"], {"termsOfServiceAgreed": True, **fields}, use_jwk=True)
        if resp.status in (200, 201):
            self.kid = resp.headers["Location"]
        return resp

    @property
    def thumbprint(self) -> str:
        return parse_jwk(jwk_from_key(self.key.public_key())).thumbprint

    def key_authorization(self, token: str) -> str:
        return f"{token}.{self.thumbprint}"

    async def new_order(self, names: list[str], **fields: Any) -> Response:
        idents = [{"type": "ip" if _is_ip(n) else "dns", "value": n} for n in names]
        return await self.post(self.directory["newOrder"], {"identifiers": idents, **fields})

    async def poll(self, url: str, until: tuple[str, ...], attempts: int = 100) -> Response:
        for _ in range(attempts):
            resp = await self.post(url, None)
            if resp.status != 200 or resp.json.get("status") in until:
                return resp
            await asyncio.sleep(0.05)
        raise AssertionError(f"{url} never reached {until}")

    async def authorize(self, order: dict[str, Any], env: AcmeEnv, kind: str = "http-01") -> None:
        """Answer every pending authorization of an order with one challenge type and wait."""
        for authz_url in order["authorizations"]:
            authz = (await self.post(authz_url, None)).json
            if authz["status"] == "valid":
                continue
            chall = next(c for c in authz["challenges"] if c["type"] == kind)
            env.publish(kind, authz["identifier"]["value"], chall["token"], self.key_authorization(chall["token"]))
            resp = await self.post(chall["url"], {})
            assert resp.status == 200, resp.body
            done = await self.poll(authz_url, ("valid", "invalid"))
            assert done.json["status"] == "valid", done.json

    async def finalize(self, order: dict[str, Any], csr: x509.CertificateSigningRequest) -> Response:
        from cryptography.hazmat.primitives.serialization import Encoding

        return await self.post(order["finalize"], {"csr": b64e(csr.public_bytes(Encoding.DER))})

    async def issue(
        self, env: AcmeEnv, names: list[str], kind: str = "http-01", key: Any = None
    ) -> tuple[dict[str, Any], str, Any]:
        """newOrder -> authorizations -> finalize -> download; returns (order, PEM chain, cert key)."""
        resp = await self.new_order(names)
        assert resp.status == 201, resp.body
        order, order_url = resp.json, resp.headers["Location"]
        await self.authorize(order, env, kind)
        csr, cert_key = make_csr(names, key)
        resp = await self.finalize(order, csr)
        assert resp.status == 200, resp.body
        order = (await self.poll(order_url, ("valid", "invalid"))).json
        assert order["status"] == "valid", order
        cert = await self.post(order["certificate"], None)
        assert cert.status == 200
        assert cert.headers["Content-Type"].startswith("application/pem-certificate-chain")
        return order, cert.body.decode(), cert_key


def _is_ip(name: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def make_csr(names: list[str], key: Any = None) -> tuple[x509.CertificateSigningRequest, Any]:
    import ipaddress

    key = key or ec.generate_private_key(ec.SECP256R1())
    general = [x509.IPAddress(ipaddress.ip_address(n)) if _is_ip(n) else x509.DNSName(n) for n in names]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    )
    builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
    from cryptography.hazmat.primitives.asymmetric import ed448, ed25519

    edwards = isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
    return builder.sign(key, None if edwards else hashes.SHA256()), key


@dataclass
class AcmeEnv:
    """The running pieces of one test: loopback DNS, http-01 responder, the app's client."""

    dns: LoopbackDns
    http01: Http01Responder
    ca_dir: Path
    app: Any = None
    http: Any = None

    def publish(self, kind: str, name: str, token: str, key_authorization: str) -> None:
        if kind == "http-01":
            self.http01.tokens[token] = key_authorization
        elif kind == "dns-01":
            self.dns.txt.setdefault(f"_acme-challenge.{name}", []).append(dns01_value(key_authorization))
        else:  # pragma: no cover - tls-alpn-01 tests run their own TLS server
            raise AssertionError(kind)

    def client(self) -> AcmeClient:
        return AcmeClient(self.http)


@pytest.fixture
def loopback() -> Iterator[tuple[LoopbackDns, Http01Responder]]:
    dns_server = LoopbackDns().start()
    responder = Http01Responder().start()
    try:
        yield dns_server, responder
    finally:
        dns_server.stop()
        responder.stop()


def acme_environ(
    db_url: str, dns_server: LoopbackDns, responder: Http01Responder, extra: dict[str, str] | None = None
) -> dict[str, str]:
    return {
        "TETRA_DATABASE__URL": db_url,
        "TETRA_SERVER__PROTOCOLS": '["acme"]',
        "TETRA_ACME__VALIDATION__HTTP_PORT": str(responder.port),
        "TETRA_ACME__VALIDATION__RESOLVER": dns_server.address,
        "TETRA_ACME__VALIDATION__TIMEOUT": "3",
        **(extra or {}),
    }


async def start_env(
    aiohttp_client: Any,
    ca_dir: Path,
    db_url: str,
    loopback: tuple[LoopbackDns, Http01Responder],
    extra: dict[str, str] | None = None,
    clock: Any = None,
) -> AcmeEnv:
    from server.app import build_app

    dns_server, responder = loopback
    config = read_config(ca_dir / "tetra.toml", environ=acme_environ(db_url, dns_server, responder, extra))
    app = build_app(config, clock=clock)
    env = AcmeEnv(dns_server, responder, ca_dir, app)
    env.http = await aiohttp_client(app)
    return env


@pytest.fixture
async def acme_env(
    aiohttp_client: Any, ca_dir: Path, db_url: str, loopback: tuple[LoopbackDns, Http01Responder]
) -> AsyncIterator[AcmeEnv]:
    """The app with ACME on the parametrized store (SQLite and PostgreSQL)."""
    yield await start_env(aiohttp_client, ca_dir, db_url, loopback)


@pytest.fixture
async def acme_sqlite(
    aiohttp_client: Any, ca_dir: Path, loopback: tuple[LoopbackDns, Http01Responder]
) -> AsyncIterator[AcmeEnv]:
    """The app with ACME on SQLite only (bad-input tests, which do not depend on the store)."""
    yield await start_env(aiohttp_client, ca_dir, f"sqlite:///{ca_dir / 'tetra.db'}", loopback)
