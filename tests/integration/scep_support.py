"""A SCEP-enabled `tetra serve` for the SCEP tests, and the HTTP side of tests/scep_client.py.

`scep_server(ca_dir, tmp_path)` adds test profiles and a [scep] section to a fresh demo CA and
starts `tetra serve` with SCEP (and CRL, for GetCRL) on free loopback ports. Profiles:

- ``device`` (the default; label ``mdm`` too): static challenge `STATIC`, one-time challenges;
- ``held``: manual approval (PENDING, then CertPoll), static challenge `HELD`;
- ``legacy``: ``legacy = true`` (DES, 3DES, SHA-1, MD5), static challenge `LEGACY`;
- ``chain``: ``include_ca_certs = false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from server.wiring import build_ca, read_config
from tests import scep_client
from tests.integration.est_support import _profile_from_device, openssl
from tests.integration.serverproc import ServerProcess
from tests.pkilint_check import assert_certificate_lints_clean

STATIC, HELD, LEGACY = "device-static-secret", "held-static-secret", "legacy-static-secret"

SCEP_CONFIG = f"""
[scep]
default_profile = "device"
challenge_failures = 1000
challenge_window = 600
max_body = 65536

[scep.labels]
mdm = "device"

[scep.profiles.device]
challenge = "{STATIC}"

[scep.profiles.held]
challenge = "{HELD}"

[scep.profiles.legacy]
challenge = "{LEGACY}"
legacy = true

[scep.profiles.chain]
challenge = "{STATIC}"
include_ca_certs = false
"""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class ScepServer(ServerProcess):
    def __init__(
        self, ca_dir: Path, log: Path, extra_env: dict[str, str] | None = None, db_url: str | None = None
    ) -> None:
        self.db_url = db_url or f"sqlite:///{ca_dir / 'tetra.db'}"
        super().__init__(
            ca_dir / "tetra.toml",
            self.db_url,
            log,
            {"TETRA_SERVER__PROTOCOLS": '["scep", "crl"]', **(extra_env or {})},
        )
        self.ca_dir = ca_dir
        self.root = ca_dir / "ca" / "root.pem"
        self.url = f"{self.base}/scep"
        self._ra: x509.Certificate | None = None

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        """A read of the server's store, SQLite or PostgreSQL."""
        if self.db_url.startswith("sqlite:///"):
            with sqlite3.connect(self.db_url.removeprefix("sqlite:///")) as db:
                return list(db.execute(sql).fetchall())
        with psycopg.connect(self.db_url) as pg:
            return list(pg.execute(sql).fetchall())

    def write_sqlite(self, sql: str, params: tuple[Any, ...]) -> None:
        """Plant a row as a crash would have left it (SQLite stores only)."""
        with sqlite3.connect(self.db_url.removeprefix("sqlite:///")) as db:
            db.execute(sql, params)

    def counts(self) -> tuple[int, int]:
        """(certificates, enrollment requests): "nothing issued or stored"."""
        certs, requests = (
            int(self._rows(f"SELECT count(*) FROM {t}")[0][0]) for t in ("certificates", "enrollment_requests")
        )
        return certs, requests

    def http(self, method: str, url: str, body: bytes | None = None, content_type: str = "") -> Reply:
        request = urllib.request.Request(url, data=body, method=method)
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

    def one_time_challenge(self, profile: str = "device", identities: tuple[str, ...] = ()) -> str:
        """A one-time challenge made through the core (what `tetra scep challenge` does)."""

        async def make() -> str:
            ca = await build_ca(read_config(self.config, environ=self.env), open_signers=False)
            try:
                return await ca.credentials.create_challenge("scep", profile=profile, identities=identities)
            finally:
                await ca.close()

        return asyncio.run(make())

    def pending_request_ids(self) -> list[int]:
        rows = self._rows("SELECT id FROM enrollment_requests WHERE status = 'pending' ORDER BY id")
        return [int(r[0]) for r in rows]

    def issuing_ca(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.ca_dir / "ca" / "issuing-ca.pem").read_bytes())

    def ra_certificate(self) -> x509.Certificate:
        """The RA certificate from GetCACert: the one without CA basic constraints."""
        if self._ra is None:
            reply = self.http("GET", f"{self.url}/pkiclient.exe?operation=GetCACert")
            assert reply.status == 200, reply.body
            certs = scep_client.certs_only(reply.body)
            self._ra = next(c for c in certs if not scep_client.is_ca(c))
        return self._ra

    def post(self, message: scep_client.Message, path: str = "/scep/pkiclient.exe") -> Reply:
        return self.http("POST", f"{self.base}{path}?operation=PKIOperation", message.der, "application/x-pki-message")

    def exchange(
        self, message: scep_client.Message, requester: scep_client.Requester, path: str = "/scep/pkiclient.exe"
    ) -> scep_client.CertRep:
        """POST a PKIMessage and read the CertRep it gets (verified against the RA certificate)."""
        reply = self.post(message, path)
        assert reply.status == 200, reply.body
        assert reply.headers["content-type"] == "application/x-pki-message"
        return scep_client.parse_cert_rep(reply.body, message, requester.key, self.ra_certificate())


def prepare_scep_ca(ca_dir: Path) -> None:
    profiles = ca_dir / "profiles"
    _profile_from_device(profiles, "held", approval="manual")
    _profile_from_device(profiles, "legacy")
    _profile_from_device(profiles, "chain")
    config = ca_dir / "tetra.toml"
    demo = config.read_text()
    if "\n[scep]" in demo:  # `tetra init` with SCEP writes a [scep] of its own, as the last section
        demo = demo[: demo.index("\n[scep]")]
    config.write_text(demo + SCEP_CONFIG)


def scep_server(
    ca_dir: Path, tmp_path: Path, extra_env: dict[str, str] | None = None, db_url: str | None = None
) -> Iterator[ScepServer]:
    prepare_scep_ca(ca_dir)
    server = ScepServer(ca_dir, tmp_path / "serve.log", extra_env, db_url)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


running_server = contextlib.contextmanager(scep_server)
"""``with running_server(ca_dir, tmp_path, ...) as server:`` for a test that needs its own."""


def module_server(factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[ScepServer]:
    """One server for a test module (each test enrols its own names)."""
    tmp = factory.mktemp("scep")
    shutil.copytree(template_dir, tmp / "ca")
    yield from scep_server(tmp / "ca", tmp)


def enrol(
    server: ScepServer,
    name: str,
    *,
    challenge: str = STATIC,
    path: str = "/scep/pkiclient.exe",
    requester: scep_client.Requester | None = None,
    **options: Any,
) -> tuple[scep_client.Requester, scep_client.CertRep]:
    """One PKCSReq for ``name`` (CN and DNS SAN) with a fresh key; the requester and the CertRep."""
    requester = requester or scep_client.Requester.fresh(name)
    message = scep_client.pkcs_req(requester, server.ra_certificate(), name, [name], challenge=challenge, **options)
    return requester, server.exchange(message, requester, path)


def check_issued(
    server: ScepServer, tmp: Path, cert: x509.Certificate, requester: scep_client.Requester, names: list[str]
) -> None:
    """Chains to the root (`openssl verify`), holds the requester's key and names, lints clean."""
    leaf = tmp / "leaf.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    chain = server.ca_dir / "ca" / "issuing-ca.pem"
    openssl("verify", "-CAfile", str(server.root), "-untrusted", str(chain), str(leaf))
    assert cert.public_key() == requester.key.public_key()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == names
    assert_certificate_lints_clean(cert.public_bytes(serialization.Encoding.DER))
