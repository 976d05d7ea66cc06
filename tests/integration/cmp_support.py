"""A CMP-enabled `tetra serve` for the CMP tests, and the HTTP side of tests/cmp_client.py.

`cmp_server(ca_dir, tmp_path)` adds test profiles, a device maker's CA and a [cmp] section to a
fresh demo CA, stores the shared secrets, and starts `tetra serve` with CMP (and CRL, OCSP) on
free loopback ports. Profiles: ``device`` (the default), ``held`` (manual approval: waiting,
then pollReq). Secrets: `REFERENCE`/`SECRET` for device, `HELD_REFERENCE`/`SECRET` for held.
The maker's CA (factory-ca.pem) is a [cmp] trust anchor; certConf is due within CONFIRM_WAIT.
"""

from __future__ import annotations

import asyncio
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from server.wiring import build_ca, read_config
from tests import cmp_client
from tests.integration.est_support import _profile_from_device, factory_ca
from tests.integration.serverproc import ServerProcess

REFERENCE, HELD_REFERENCE, SECRET = b"device-ref", b"held-ref", b"device-shared-secret"
CONTENT_TYPE = "application/pkixcmp"
CONFIRM_WAIT = 2  # seconds: the unconfirmed-certificate test waits this out
CMP_CONFIG = f"""
[cmp]
default_profile = "device"
confirm_wait = {CONFIRM_WAIT}
poll_interval = 1
max_body = 16384
trust_anchors = ["factory-ca.pem"]
"""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class CmpServer(ServerProcess):
    def __init__(self, ca_dir: Path, log: Path, db_url: str | None = None) -> None:
        self.db_url = db_url or f"sqlite:///{ca_dir / 'tetra.db'}"
        super().__init__(ca_dir / "tetra.toml", self.db_url, log, {"TETRA_SERVER__PROTOCOLS": '["cmp", "crl", "ocsp"]'})
        self.ca_dir = ca_dir
        self.root = x509.load_pem_x509_certificate((ca_dir / "ca" / "root.pem").read_bytes())
        self.ra = x509.load_pem_x509_certificate((ca_dir / "ra" / "ra.pem").read_bytes())
        self.url = f"{self.base}/.well-known/cmp"
        self.maker: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]  # the device maker's CA and key

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """A read of the server's store, SQLite or PostgreSQL."""
        if self.db_url.startswith("sqlite:///"):
            with sqlite3.connect(self.db_url.removeprefix("sqlite:///")) as db:
                return list(db.execute(sql).fetchall())
        with psycopg.connect(self.db_url) as pg:
            return list(pg.execute(sql).fetchall())

    def counts(self) -> tuple[int, int, int]:
        """(certificates, enrollment requests, cmp transactions): "nothing issued or stored"."""
        tables = ("certificates", "enrollment_requests", "cmp_transactions")
        certs, requests, transactions = (int(self.rows(f"SELECT count(*) FROM {t}")[0][0]) for t in tables)
        return certs, requests, transactions

    def status_of(self, certificate: x509.Certificate) -> str:
        rows = self.rows(f"SELECT status FROM certificates WHERE serial = '{certificate.serial_number:x}'")
        return str(rows[0][0]) if rows else "missing"

    def http(self, body: bytes, path: str = "", content_type: str = CONTENT_TYPE) -> Reply:
        request = urllib.request.Request(f"{self.url}{path}", data=body, method="POST")
        if content_type:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return Reply(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
        except urllib.error.HTTPError as err:
            return Reply(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())

    def exchange(self, message: cmp_client.Outgoing | bytes, path: str = "") -> cmp_client.Reply:
        """POST a PKIMessage; the reply, which RFC 9811 makes a 200 PKIMessage whatever it says."""
        reply = self.http(message.der if isinstance(message, cmp_client.Outgoing) else message, path)
        assert reply.status == 200, reply.body[:300]
        assert reply.headers["content-type"] == "application/pkixcmp"
        return cmp_client.read_reply(reply.body)

    def pending_request_ids(self) -> list[int]:
        rows = self.rows("SELECT id FROM enrollment_requests WHERE status = 'pending' ORDER BY id")
        return [int(r[0]) for r in rows]


def mac_client(reference: bytes = REFERENCE, secret: bytes = SECRET, **options: Any) -> cmp_client.Client:
    return cmp_client.Client(cmp_client.Mac(reference, secret, **options))


def signing_client(certificate: x509.Certificate, key: Any, *chain: x509.Certificate) -> cmp_client.Client:
    return cmp_client.Client(cmp_client.Signature(key, certificate, tuple(chain)))


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def subject(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])


def prepare_cmp_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Profiles, the maker's CA, the [cmp] section and the secrets; the maker's CA and key."""
    _profile_from_device(ca_dir / "profiles", "held", approval="manual")
    maker = factory_ca(ca_dir)
    config = ca_dir / "tetra.toml"
    demo = config.read_text()
    if "\n[cmp]" in demo:
        demo = demo[: demo.index("\n[cmp]")]
    config.write_text(demo + CMP_CONFIG)
    return maker


async def _add_secrets(config: Path, env: dict[str, str]) -> None:
    ca = await build_ca(read_config(config, environ=env), open_signers=False)
    try:
        for reference, profile in ((REFERENCE, "device"), (HELD_REFERENCE, "held")):
            await ca.credentials.create_mac_key("cmp", key_id=reference.decode(), profile=profile, secret=SECRET)
    finally:
        await ca.close()


def cmp_server(ca_dir: Path, log: Path, db_url: str | None = None) -> Iterator[CmpServer]:
    maker = prepare_cmp_ca(ca_dir)
    url = db_url or f"sqlite:///{ca_dir / 'tetra.db'}"
    asyncio.run(_add_secrets(ca_dir / "tetra.toml", {"TETRA_DATABASE__URL": url}))
    server = CmpServer(ca_dir, log, url)
    server.maker = maker
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
