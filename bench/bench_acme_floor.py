"""The CPU floor of one ACME issuance in CPython: a deliberately minimal ACME server, measured.

A measurement tool, not a CA. The server below does only what one complete issuance needs, with
the fastest building blocks installed here and no framework, so that the server CPU it spends
per issuance bounds from below what any Python implementation at this fidelity can spend:

- uvloop; an asyncio.Protocol over TLS 1.3 (ssl module, P-256 server certificate, keep-alive),
  requests framed by llhttp (httptools);
- per issuance the five requests of bench_acme.py's client: newOrder, authorization (POST-as-GET),
  challenge (answered when validation is done), finalize (answered with the certificate issued),
  certificate download. Each is a flattened ES256 JWS with a kid whose signature is verified with
  cryptography and whose url is checked; its nonce must be one this process issued and not yet
  used (removed from memory at once) and every answer carries a fresh one;
- durable state in SQLite through the stdlib sqlite3 module: WAL, synchronous=FULL, rows for the
  order, authorization, challenge, certificate and each consumed nonce; every request writes
  (at least its nonce row) and is answered only after its commit. Group commit: `--commit inline`
  (default, the cheapest in CPU) commits in the loop's thread once per loop iteration for every
  request that queued in it (the loop waits for the fsync); `--commit group` does the same in a
  writer thread, committing whatever queued meanwhile; `--commit each` commits every request on its
  own in that thread;
- http-01 validation inline in the challenge request: an A query for the name sent over UDP to the
  loopback DNS server (bench_acme.start_dns) and a plain-HTTP GET on a new TCP connection to the
  load generator's responder, body compared with the key authorization;
- finalize: the CSR loaded (x509.load_der_x509_csr), its signature verified, its names compared
  with the order's, then a certificate built with x509.CertificateBuilder (tls-server's shape: CN,
  SAN, KU, EKU, basic constraints, policy, SKI, AKI, AIA, CRL DP) and signed by a P-256 CA key.

Left out, on purpose (each would cost more CPU, none can be avoided by a real CA for free):
reads come from in-memory mirrors of the rows (written only after their commit), not from the
database; one identifier per order (order, authorization and challenge share one id); no
linting, no CAA, no rate limits, no audit events, no "processing" commit before validation or
before signing (one commit per request); no error handling beyond what the benchmark needs (no
problem documents worth the name, no expiry sweeps, no bounds on the nonce set); no secondary
indexes; the DNS client keeps one UDP socket (random query ids, no source-port randomisation).

It starts the server in a child process, drives it with bench_acme.py's client at concurrency 1
and 8, reads the server's CPU from /proc (user and system apart), prints a table, then measures
the irreducible pieces in-process (and the transport round trip on the server) and prints what
they add up to.

    python bench/bench_acme_floor.py [--seconds 4] [--concurrency 1 8] [--commit inline|group|each]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import gc
import itertools
import json
import os
import queue
import random
import resource
import secrets
import shutil
import socket
import sqlite3
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import aiohttp
import httptools
import uvloop
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_acme import (  # noqa: E402
    TICKS,
    Client,
    Result,
    drive_pool,
    http01_responder,
    make_pool,
    start_dns,
    stop,
    wait_http,
    with_retries,
)

from protocols.acme.jwk import jwk_from_key, parse_jwk  # noqa: E402
from protocols.acme.jws import sign_jws  # noqa: E402
from tests.tetra_process import free_port  # noqa: E402
from tests.unit.protocols.acme.support import make_csr  # noqa: E402

ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
Statement = tuple[str, tuple[Any, ...]]
# CPU (thread time) the server spends in each piece while it serves: piece -> [calls, seconds]. The
# pieces measured alone in a hot loop cost less than they do between everything else a server does.
SPENT: dict[str, list[float]] = {}


def spend(piece: str, started: float) -> None:
    entry = SPENT.setdefault(piece, [0, 0.0])
    entry[0] += 1
    entry[1] += time.thread_time() - started


# == the minimal server (runs in the child process) ==============================================
def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Problem(Exception):
    def __init__(self, status: int, kind: str, detail: str = "") -> None:
        super().__init__(detail or kind)
        self.status, self.kind, self.detail = status, kind, detail


def verify_es256(body: bytes, keys: Mapping[str, ec.EllipticCurvePublicKey]) -> tuple[dict[str, Any], str]:
    """Parse a flattened ES256 JWS signed with a known kid and verify its signature.
    Returns the protected header and the payload (base64url); nonce and url are the caller's."""
    outer = json.loads(body)
    protected_b64, payload_b64 = outer["protected"], outer["payload"]
    header: dict[str, Any] = json.loads(b64d(protected_b64))
    if header.get("alg") != "ES256":
        raise Problem(400, "badSignatureAlgorithm")
    key = keys.get(header.get("kid", ""))
    if key is None:
        raise Problem(400, "accountDoesNotExist")
    signature = b64d(outer["signature"])
    if len(signature) != 64:
        raise Problem(400, "malformed", "bad signature length")
    der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        key.verify(der, f"{protected_b64}.{payload_b64}".encode("ascii"), ECDSA_SHA256)
    except InvalidSignature:
        raise Problem(400, "malformed", "JWS signature does not verify") from None
    return header, payload_b64


def csr_names(der: bytes) -> tuple[list[str], ec.EllipticCurvePublicKey]:
    """Load a CSR, verify its self-signature, return its DNS names and (P-256) public key."""
    csr = x509.load_der_x509_csr(der)
    if not csr.is_signature_valid:
        raise Problem(400, "badCSR", "CSR signature does not verify")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Problem(400, "badCSR", "only EC keys in this benchmark")
    names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    return names, key


class Issuer:
    """A P-256 CA and the fixed parts of a tls-server leaf (precomputed once)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key, self.cert = key, cert
        self.chain_pem = cert.public_bytes(Encoding.PEM)
        self.fixed: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                True,
            ),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (
                x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier("2.23.140.1.2.1"), None)]),
                False,
            ),
            (x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False),
            (
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.OCSP,
                            x509.UniformResourceIdentifier("http://pki.example.com/ocsp"),
                        ),
                        x509.AccessDescription(
                            x509.oid.AuthorityInformationAccessOID.CA_ISSUERS,
                            x509.UniformResourceIdentifier("http://pki.example.com/ca.der"),
                        ),
                    ]
                ),
                False,
            ),
            (
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier("http://pki.example.com/crl/1.crl")], None, None, None
                        )
                    ]
                ),
                False,
            ),
        ]

    def issue(self, public_key: ec.EllipticCurvePublicKey, names: list[str]) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )
        for ext, critical in self.fixed:
            builder = builder.add_extension(ext, critical=critical)
        return builder.sign(self.key, hashes.SHA256())


SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, jwk TEXT NOT NULL, thumbprint TEXT NOT NULL,
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, account INTEGER NOT NULL, identifiers TEXT NOT NULL,
    status TEXT NOT NULL, expires TEXT NOT NULL, certificate TEXT, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS authorizations(id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, name TEXT NOT NULL,
    status TEXT NOT NULL, expires TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS challenges(id INTEGER PRIMARY KEY, authz_id INTEGER NOT NULL, type TEXT NOT NULL,
    token TEXT NOT NULL, status TEXT NOT NULL, validated REAL);
CREATE TABLE IF NOT EXISTS certificates(serial TEXT PRIMARY KEY, order_id INTEGER NOT NULL, der BLOB NOT NULL,
    not_after REAL NOT NULL, issued REAL NOT NULL);
CREATE TABLE IF NOT EXISTS nonces_used(nonce TEXT PRIMARY KEY, used REAL NOT NULL);
"""


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    db.executescript(SCHEMA)
    return db


class Writer:
    """One SQLite connection. Requests queue their statements with a future; what has queued is run
    and committed, then the futures are resolved. A failing batch fails every request in it.
    group: in a thread of its own, one commit for all that queued meanwhile; each: in that thread, one
    commit per request; inline: in the loop's thread, one commit per loop iteration for what the
    iteration queued (the loop waits for the fsync: no thread hand-off, no concurrency either)."""

    def __init__(self, path: str, mode: str, loop: asyncio.AbstractEventLoop) -> None:
        self.db = open_db(path)
        self.group = mode != "each"
        self.inline = mode == "inline"
        self.loop = loop
        self.queue: queue.SimpleQueue[tuple[list[Statement], asyncio.Future[None]]] = queue.SimpleQueue()
        self.pending: list[tuple[list[Statement], asyncio.Future[None]]] = []
        self.commits = 0
        if not self.inline:
            threading.Thread(target=self._run, daemon=True).start()

    def write(self, statements: list[Statement]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self.loop.create_future()
        if self.inline:
            if not self.pending:
                self.loop.call_soon(self._flush)
            self.pending.append((statements, future))
        else:
            self.queue.put((statements, future))
        return future

    def _flush(self) -> None:
        batch, self.pending = self.pending, []
        started = time.thread_time()
        error = self._commit(batch)
        spend("commit", started)
        self._settle([f for _, f in batch], error)

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            for part in [batch] if self.group else [[item] for item in batch]:
                started = time.thread_time()
                error = self._commit(part)
                spend("commit", started)
                self.loop.call_soon_threadsafe(self._settle, [f for _, f in part], error)

    def _commit(self, part: list[tuple[list[Statement], asyncio.Future[None]]]) -> BaseException | None:
        try:
            self.db.execute("BEGIN")
            for statements, _ in part:
                for sql, params in statements:
                    self.db.execute(sql, params)
            self.db.execute("COMMIT")
            self.commits += 1
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            return exc
        return None

    @staticmethod
    def _settle(futures: list[asyncio.Future[None]], error: BaseException | None) -> None:
        for future in futures:
            if not future.done():
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(error)


# -- http-01 from the server's side: DNS over UDP, GET over plain TCP ----------------------------
def dns_query(name: str, qid: int) -> bytes:
    labels = b"".join(bytes([len(label)]) + label for label in name.encode("ascii").split(b"."))
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x00\x01\x00\x01"


def dns_first_a(reply: bytes, question_end: int) -> str:
    if reply[3] & 0x0F:
        raise Problem(400, "dns", f"rcode {reply[3] & 0x0F}")
    pos = question_end
    for _ in range(struct.unpack_from("!H", reply, 6)[0]):
        while reply[pos] and reply[pos] & 0xC0 != 0xC0:  # owner name: labels, maybe ending in a pointer
            pos += reply[pos] + 1
        pos += 2 if reply[pos] & 0xC0 == 0xC0 else 1
        rtype, _cls, _ttl, length = struct.unpack_from("!HHIH", reply, pos)
        pos += 10
        if rtype == 1 and length == 4:
            return socket.inet_ntoa(reply[pos : pos + 4])
        pos += length
    raise Problem(400, "dns", "no A record")


class DnsClient(asyncio.DatagramProtocol):
    """A queries over one connected UDP socket, matched to their answers by query id."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[bytes]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def connect(cls, address: str) -> DnsClient:
        host, port = address.rsplit(":", 1)
        loop = asyncio.get_running_loop()
        _, client = await loop.create_datagram_endpoint(cls, remote_addr=(host, int(port)))
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        future = self.waiting.pop(int.from_bytes(data[:2], "big"), None)
        if future is not None and not future.done():
            future.set_result(data)

    async def a(self, name: str) -> str:
        qid = random.getrandbits(16)
        while qid in self.waiting:
            qid = random.getrandbits(16)
        query = dns_query(name, qid)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiting[qid] = future
        assert self.transport is not None
        self.transport.sendto(query)
        try:
            reply = await future
        finally:
            self.waiting.pop(qid, None)
        return dns_first_a(reply, len(query))


class HttpGet(asyncio.Protocol):
    """One GET with Connection: close; the answer framed by llhttp."""

    def __init__(self, request: bytes, done: asyncio.Future[tuple[int, bytes]]) -> None:
        self.request, self.done = request, done
        self.parser = httptools.HttpResponseParser(self)
        self.body = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        self.body += body
        if len(self.body) > 64 * 1024:
            self._finish(ConnectionError("body too large"))

    def on_message_complete(self) -> None:
        if not self.done.done():
            self.done.set_result((self.parser.get_status_code(), self.body))
        assert self.transport is not None
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc or ConnectionError("closed before the answer"))

    def _finish(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
        if self.transport is not None:
            self.transport.close()


async def http01_fetch(dns: DnsClient | None, name: str, port: int, token: str) -> tuple[int, bytes]:
    """GET http://name:port/.well-known/acme-challenge/token, the name resolved through `dns`
    (None: `name` is already an address)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(10):
        address = await dns.a(name) if dns is not None else name
        done: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        request = (
            f"GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: {name}:{port}\r\n"
            "User-Agent: floor-va\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        await loop.create_connection(partial(HttpGet, request, done), address, port)
        return await done


# -- the ACME server -------------------------------------------------------------------------
@dataclass
class Account:
    id: int
    key: ec.EllipticCurvePublicKey
    thumbprint: str


@dataclass
class Order:
    id: int
    kid: str
    name: str
    token: str
    expires: str
    status: str = "pending"  # pending -> ready -> valid (or invalid)
    authz_status: str = "pending"
    chall_status: str = "pending"
    validated: str = ""
    pem: bytes = b""


@dataclass
class Floor:
    base: str
    writer: Writer
    issuer: Issuer
    dns: DnsClient
    http01_port: int
    nonce_rows: bool
    keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)
    accounts: dict[str, Account] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    nonces: set[str] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    requests: int = 0
    certificates: int = 0

    def nonce(self) -> str:
        value = secrets.token_urlsafe(16)
        self.nonces.add(value)
        return value

    def directory(self) -> bytes:
        names = {"newNonce": "new-nonce", "newAccount": "new-acct", "newOrder": "new-order"}
        return json.dumps({k: f"{self.base}/{v}" for k, v in names.items()}).encode()

    def stats(self) -> bytes:
        return json.dumps(
            {
                "requests": self.requests,
                "commits": self.writer.commits,
                "certificates": self.certificates,
                "spent": {k: list(v) for k, v in SPENT.items()},
            }
        ).encode()

    def redeem(self, header: dict[str, Any], url: str) -> list[Statement]:
        """The url and nonce checks every request passes; the nonce's consumption row."""
        if header.get("url") != url:
            raise Problem(401, "unauthorized", "JWS url does not match the request")
        nonce = str(header.get("nonce"))
        try:
            self.nonces.remove(nonce)  # single use from here on, before any await
        except KeyError:
            raise Problem(400, "badNonce") from None
        return [("INSERT INTO nonces_used(nonce, used) VALUES (?, ?)", (nonce, time.time()))] if self.nonce_rows else []

    async def commit(self, statements: list[Statement]) -> None:
        if statements:
            await self.writer.write(statements)

    def owned(self, ident: str, kid: str) -> Order:
        order = self.orders.get(int(ident)) if ident.isdigit() else None
        if order is None or order.kid != kid:
            raise Problem(404, "malformed", "no such resource")
        return order

    def order_json(self, order: Order) -> dict[str, Any]:
        body: dict[str, Any] = {
            "status": order.status,
            "expires": order.expires,
            "identifiers": [{"type": "dns", "value": order.name}],
            "authorizations": [f"{self.base}/authz/{order.id}"],
            "finalize": f"{self.base}/finalize/{order.id}",
        }
        if order.status == "valid":
            body["certificate"] = f"{self.base}/cert/{order.id}"
        return body

    def challenge_json(self, order: Order) -> dict[str, Any]:
        body = {
            "type": "http-01",
            "url": f"{self.base}/chall/{order.id}",
            "token": order.token,
            "status": order.chall_status,
        }
        if order.validated:
            body["validated"] = order.validated
        return body

    async def post(self, path: str, body: bytes) -> tuple[int, list[str], bytes]:
        """One ACME POST: (status, extra header lines, body)."""
        url = self.base + path
        kind, _, ident = path[1:].partition("/")
        if kind == "new-acct":
            return await self.new_account(body, url)
        started = time.thread_time()
        header, payload_b64 = verify_es256(body, self.keys)
        spend("jws", started)
        statements = self.redeem(header, url)
        kid: str = header["kid"]
        if kind == "new-order":
            payload = json.loads(b64d(payload_b64))
            idents = payload["identifiers"]
            if len(idents) != 1 or idents[0].get("type") != "dns":
                raise Problem(400, "rejectedIdentifier", "one DNS identifier per order in this benchmark")
            name = str(idents[0]["value"])
            oid = next(self.ids)
            now = time.time()
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 7 * 86400))
            order = Order(oid, kid, name, secrets.token_urlsafe(32), expires)
            account = self.accounts[kid].id
            statements += [
                (
                    "INSERT INTO orders(id, account, identifiers, status, expires, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (oid, account, json.dumps(idents), "pending", expires, now),
                ),
                (
                    "INSERT INTO authorizations(id, order_id, name, status, expires) VALUES (?, ?, ?, ?, ?)",
                    (oid, oid, name, "pending", expires),
                ),
                (
                    "INSERT INTO challenges(id, authz_id, type, token, status) VALUES (?, ?, ?, ?, ?)",
                    (oid, oid, "http-01", order.token, "pending"),
                ),
            ]
            await self.commit(statements)
            self.orders[oid] = order
            return 201, [f"Location: {self.base}/order/{oid}"], json.dumps(self.order_json(order)).encode()
        order = self.owned(ident, kid)
        if kind == "authz":
            if payload_b64:
                raise Problem(400, "malformed", "POST-as-GET only")
            await self.commit(statements)
            authz = {
                "status": order.authz_status,
                "expires": order.expires,
                "identifier": {"type": "dns", "value": order.name},
                "challenges": [self.challenge_json(order)],
            }
            return 200, [], json.dumps(authz).encode()
        if kind == "chall":
            if order.chall_status == "pending":
                order.chall_status = "processing"  # in memory only: no second validation meanwhile
                key_authorization = f"{order.token}.{self.accounts[kid].thumbprint}"
                try:
                    status, got = await http01_fetch(self.dns, order.name, self.http01_port, order.token)
                    ok = status == 200 and got.rstrip(b" \t\r\n") == key_authorization.encode()
                except (OSError, TimeoutError, Problem):
                    ok = False
                result = "valid" if ok else "invalid"
                now = time.time()
                statements += [
                    ("UPDATE challenges SET status = ?, validated = ? WHERE id = ?", (result, now, order.id)),
                    ("UPDATE authorizations SET status = ? WHERE id = ?", (result, order.id)),
                    ("UPDATE orders SET status = ? WHERE id = ?", ("ready" if ok else "invalid", order.id)),
                ]
                await self.commit(statements)
                order.chall_status = order.authz_status = result
                order.status = "ready" if ok else "invalid"
                order.validated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
            else:
                await self.commit(statements)
            return 200, [], json.dumps(self.challenge_json(order)).encode()
        if kind == "finalize":
            if order.status != "ready":
                raise Problem(403, "orderNotReady")
            csr_der = b64d(json.loads(b64d(payload_b64))["csr"])
            started = time.thread_time()
            names, public_key = csr_names(csr_der)
            spend("csr", started)
            if names != [order.name]:
                raise Problem(400, "badCSR", "CSR names differ from the order's")
            order.status = "processing"
            started = time.thread_time()
            cert = self.issuer.issue(public_key, names)
            der = cert.public_bytes(Encoding.DER)
            pem = cert.public_bytes(Encoding.PEM)
            spend("cert", started)
            statements += [
                (
                    "INSERT INTO certificates(serial, order_id, der, not_after, issued) VALUES (?, ?, ?, ?, ?)",
                    (format(cert.serial_number, "x"), order.id, der, cert.not_valid_after_utc.timestamp(), time.time()),
                ),
                ("UPDATE orders SET status = ?, certificate = ? WHERE id = ?", ("valid", order.id, order.id)),
            ]
            await self.commit(statements)
            order.pem = pem + self.issuer.chain_pem
            order.status = "valid"
            self.certificates += 1
            return 200, [f"Location: {self.base}/order/{order.id}"], json.dumps(self.order_json(order)).encode()
        if kind == "order":
            await self.commit(statements)
            return 200, [], json.dumps(self.order_json(order)).encode()
        if kind == "cert":
            if order.status != "valid":
                raise Problem(404, "malformed", "no certificate yet")
            await self.commit(statements)
            return 200, ["Content-Type: application/pem-certificate-chain"], order.pem
        raise Problem(404, "malformed", "no such resource")

    async def new_account(self, body: bytes, url: str) -> tuple[int, list[str], bytes]:
        """Set-up only (not part of an issuance): a jwk-signed JWS; the account row committed."""
        outer = json.loads(body)
        header = json.loads(b64d(outer["protected"]))
        jwk = parse_jwk(header["jwk"])
        key = jwk.key
        assert isinstance(key, ec.EllipticCurvePublicKey)
        signature = b64d(outer["signature"])
        der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            key.verify(der, f"{outer['protected']}.{outer['payload']}".encode(), ECDSA_SHA256)
        except InvalidSignature:
            raise Problem(400, "malformed", "JWS signature does not verify") from None
        statements = self.redeem(header, url)
        account_id = next(self.ids)
        kid = f"{self.base}/acct/{account_id}"
        statements.append(
            (
                "INSERT INTO accounts(id, jwk, thumbprint, created) VALUES (?, ?, ?, ?)",
                (account_id, jwk.canonical, jwk.thumbprint, time.time()),
            )
        )
        await self.commit(statements)
        self.accounts[kid] = Account(account_id, key, jwk.thumbprint)
        self.keys[kid] = key
        return 201, [f"Location: {kid}"], json.dumps({"status": "valid"}).encode()


REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
NOOP_BODY = b"x" * 400


class Connection(asyncio.Protocol):
    """One keep-alive TLS connection; llhttp frames the requests, one at a time."""

    def __init__(self, app: Floor) -> None:
        self.app = app
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body = b""
        self.method = b""
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.body = b"", b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_headers_complete(self) -> None:
        self.method = self.parser.get_method()
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        app = self.app
        app.requests += 1
        path = self.url.decode("ascii")
        if self.method == b"POST":
            if path == "/noop":  # the transport's own cost: no parsing, no nonce, a fixed answer
                self.respond(200, [], NOOP_BODY, nonce=False)
                return
            asyncio.get_running_loop().create_task(self.post(path, self.body, self.keep_alive))
        elif path == "/dir":
            self.respond(200, [], app.directory(), nonce=False)
        elif path == "/new-nonce":
            self.respond(200, [], b"", nonce=True)
        elif path == "/stats":
            self.respond(200, [], app.stats(), nonce=False)
        else:
            self.respond(404, [], b"", nonce=False)

    async def post(self, path: str, body: bytes, keep_alive: bool) -> None:
        try:
            status, headers, answer = await self.app.post(path, body)
        except Problem as problem:
            status, headers = problem.status, ["Content-Type: application/problem+json"]
            answer = json.dumps(
                {"type": f"urn:ietf:params:acme:error:{problem.kind}", "detail": problem.detail}
            ).encode()
        except Exception:
            traceback.print_exc()
            status, headers, answer = 500, [], b""
        self.respond(status, headers, answer, nonce=True, keep_alive=keep_alive)

    def respond(
        self, status: int, headers: list[str], body: bytes, *, nonce: bool, keep_alive: bool | None = None
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", f"Content-Length: {len(body)}"]
        if not any(h.startswith("Content-Type") for h in headers):
            lines.append("Content-Type: application/json")
        if nonce:
            lines.append(f"Replay-Nonce: {self.app.nonce()}")
            lines.append("Cache-Control: no-store")
        lines += headers
        keep = self.keep_alive if keep_alive is None else keep_alive
        if not keep:
            lines.append("Connection: close")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body if self.method != b"HEAD" else b""))
        if not keep:
            transport.close()


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.load_cert_chain(cert, key)
    return context


async def serve_async(config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    ca_key = load_pem_private_key(Path(config["ca_key"]).read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(Path(config["ca_cert"]).read_bytes())
    app = Floor(
        base=f"https://127.0.0.1:{config['port']}",
        writer=Writer(config["db"], config["commit"], loop),
        issuer=Issuer(ca_key, ca_cert),
        dns=await DnsClient.connect(config["dns"]),
        http01_port=config["http01_port"],
        nonce_rows=config["nonce_rows"],
    )
    context = server_tls_context(config["tls_cert"], config["tls_key"])
    server = await loop.create_server(
        partial(Connection, app), "127.0.0.1", config["port"], ssl=context, backlog=1024, reuse_address=True
    )
    gc.collect()
    gc.freeze()  # what start-up made stays out of the collector's way, as Tetra's server does
    async with server:
        await server.serve_forever()


def serve(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    uvloop.run(serve_async(config))


# == set-up shared by the parent ===============================================================
def self_signed(work: Path, stem: str, *, ca: bool) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Floor CA" if ca else "localhost")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    else:
        import ipaddress

        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = work / f"{stem}.pem", work / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    key_path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return cert_path, key_path


@dataclass
class Setup:
    work: Path
    tls: tuple[Path, Path]
    ca: tuple[Path, Path]
    dns: str
    http01_port: int
    commit: str
    nonce_rows: bool


def start_floor(setup: Setup) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = {
        "port": port,
        "tls_cert": str(setup.tls[0]),
        "tls_key": str(setup.tls[1]),
        "ca_cert": str(setup.ca[0]),
        "ca_key": str(setup.ca[1]),
        "db": str(setup.work / f"floor-{port}.sqlite"),
        "dns": setup.dns,
        "http01_port": setup.http01_port,
        "commit": setup.commit,
        "nonce_rows": setup.nonce_rows,
    }
    path = setup.work / f"floor-{port}.json"
    path.write_text(json.dumps(config))
    log = (setup.work / "floor.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve", str(path)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_http(f"https://127.0.0.1:{port}/dir", proc)
    except RuntimeError:
        stop(proc)
        raise
    return proc, f"https://127.0.0.1:{port}/dir"


def user_system(pid: int, tid: int | None = None) -> tuple[float, float]:
    """utime and stime of one process (all its threads) or of one of its threads, seconds, from /proc."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def loop_thread_cpu(pid: int) -> float:
    """CPU seconds of the process's main thread, where the event loop runs (the rest is the writer)."""
    return sum(user_system(pid, pid))


# == load runs =================================================================================
@dataclass
class Run:
    result: Result
    user: float = 0.0
    system: float = 0.0
    requests: int = 0
    commits: int = 0
    certificates: int = 0
    client: float = 0.0  # the load generator's own CPU (this process: client, http-01 responder)
    loop: float = 0.0  # the server's event-loop thread; user + system - loop is its SQLite writer thread
    in_server: dict[str, float] = field(default_factory=dict)  # piece -> CPU µs per call inside the window

    def per_issuance_ms(self, seconds: float) -> float:
        return seconds / self.result.done * 1000 if self.result.done else 0.0


async def load_run(
    setup: Setup, concurrency: int, seconds: float, pool: list[tuple[str, bytes]], tokens: dict[str, str]
) -> Run:
    proc, url = with_retries(partial(start_floor, setup))
    run = Run(Result("floor", concurrency))
    base = url.rsplit("/", 1)[0]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    marks: list[tuple[float, float, dict[str, Any], float, float]] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:

            async def probe() -> None:
                # At the start the counters are read before the CPU, at the end after it: the
                # probe's own request stays outside the CPU window.
                if not marks:
                    async with session.get(f"{base}/stats") as resp:
                        stats = await resp.json(content_type=None)
                    user, system = user_system(proc.pid)
                else:
                    user, system = user_system(proc.pid)
                    async with session.get(f"{base}/stats") as resp:
                        stats = await resp.json(content_type=None)
                marks.append((user, system, stats, time.process_time(), loop_thread_cpu(proc.pid)))

            await drive_pool(run.result, url, proc.pid, seconds, pool, tokens, probe=probe)
    finally:
        stop(proc)
    (u0, s0, first, c0, l0), (u1, s1, last, c1, l1) = marks
    run.user, run.system, run.client, run.loop = u1 - u0, s1 - s0, c1 - c0, l1 - l0
    run.requests = last["requests"] - first["requests"] - 1  # less the last probe's own
    run.commits = last["commits"] - first["commits"]
    run.certificates = last["certificates"] - first["certificates"]
    for piece, (calls, spent) in last["spent"].items():
        calls0, spent0 = first["spent"].get(piece, (0, 0.0))
        if calls > calls0:
            run.in_server[piece] = (spent - spent0) / (calls - calls0) * 1e6
    return run


async def honesty_checks(setup: Setup, tokens: dict[str, str]) -> list[str]:
    """Before measuring, on a server of its own: what the server must refuse, it refuses."""
    proc, url = start_floor(setup)
    base = url.rsplit("/", 1)[0]
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    passed: list[str] = []
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            client = Client(session, url, Result("check", 1))
            await client.setup()
            other_key = ec.generate_private_key(ec.SECP256R1())

            async def post(
                target: str, payload: Any, *, nonce: str = "", key: Any = None, signed_url: str = ""
            ) -> tuple[int, Any]:
                protected = {"nonce": nonce or await client.nonce(), "url": signed_url or target, "kid": client.kid}
                raw = None if payload is None else json.dumps(payload).encode()
                body = sign_jws(key or client.key, raw, protected)
                headers = {"Content-Type": "application/jose+json"}
                async with session.post(target, data=body, headers=headers) as resp:
                    data = await resp.read()
                    return resp.status, json.loads(data) if data.startswith(b"{") else data

            def expect(what: str, got: tuple[int, Any], status: int, kind: str = "") -> Any:
                ok = got[0] == status and (not kind or kind in str(got[1].get("type", "")))
                if not ok:
                    raise RuntimeError(f"honesty check failed: {what}: {got}")
                passed.append(what)
                return got[1]

            def new_order(name: str) -> dict[str, Any]:
                return {"identifiers": [{"type": "dns", "value": name}]}

            nonce = await client.nonce()
            expect("newOrder", await post(f"{base}/new-order", new_order("a.check.example"), nonce=nonce), 201)
            expect(
                "replayed nonce refused",
                await post(f"{base}/new-order", new_order("b.check.example"), nonce=nonce),
                400,
                "badNonce",
            )
            expect(
                "never-issued nonce refused",
                await post(f"{base}/new-order", new_order("b.check.example"), nonce=secrets.token_urlsafe(16)),
                400,
                "badNonce",
            )
            expect(
                "signature by another key refused",
                await post(f"{base}/new-order", new_order("b.check.example"), key=other_key),
                400,
                "malformed",
            )
            expect(
                "JWS url other than the request's refused",
                await post(f"{base}/new-order", new_order("b.check.example"), signed_url=f"{base}/new-acct"),
                401,
                "unauthorized",
            )
            # An order whose token the responder does not serve: validation fails, finalize refused.
            order = expect("newOrder", await post(f"{base}/new-order", new_order("c.check.example")), 201)
            authz = expect("authorization", await post(order["authorizations"][0], None), 200)
            chall = expect("challenge", await post(authz["challenges"][0]["url"], {}), 200)
            if chall["status"] != "invalid":
                raise RuntimeError(f"honesty check failed: unserved token validated: {chall}")
            passed.append("http-01 without the key authorization served: invalid")
            csr = make_csr(["c.check.example"])[0].public_bytes(Encoding.DER)
            expect(
                "finalize of an unvalidated order refused",
                await post(order["finalize"], {"csr": b64e(csr)}),
                403,
                "orderNotReady",
            )
            # A validated order: a CSR for another name is refused, the right one is issued.
            order = expect("newOrder", await post(f"{base}/new-order", new_order("d.check.example")), 201)
            authz = expect("authorization", await post(order["authorizations"][0], None), 200)
            token = authz["challenges"][0]["token"]
            tokens[token] = f"{token}.{client.thumbprint}"
            chall = expect("challenge", await post(authz["challenges"][0]["url"], {}), 200)
            tokens.pop(token)
            if chall["status"] != "valid":
                raise RuntimeError(f"honesty check failed: served key authorization not validated: {chall}")
            wrong = make_csr(["e.check.example"])[0].public_bytes(Encoding.DER)
            expect("CSR for other names refused", await post(order["finalize"], {"csr": b64e(wrong)}), 400, "badCSR")
            right = make_csr(["d.check.example"])[0].public_bytes(Encoding.DER)
            done = expect("finalize", await post(order["finalize"], {"csr": b64e(right)}), 200)
            pem = expect("certificate download", await post(done["certificate"], None), 200)
            leaf = x509.load_pem_x509_certificate(pem)
            leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(setup.ca[0].read_bytes()))
            passed.append("certificate verifies against the CA")
    finally:
        stop(proc)
    return passed


def load_table(runs: list[Run]) -> list[str]:
    out = [
        "| concurrency | issuances | issuances/s | requests / issuance | commits / issuance "
        "| server CPU ms / issuance: user | system | total | of which SQLite writer thread "
        "| issuances / server CPU-s | load generator CPU ms / issuance | errors | badNonce |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        r = run.result
        certs = run.certificates or 1
        total = run.user + run.system
        out.append(
            f"| {r.concurrency} | {r.done} | {r.done / r.seconds:.1f} | {run.requests / certs:.2f} "
            f"| {run.commits / certs:.2f} | {run.per_issuance_ms(run.user):.2f} "
            f"| {run.per_issuance_ms(run.system):.2f} "
            f"| **{run.per_issuance_ms(total):.2f}** | {run.per_issuance_ms(total - run.loop):.2f} "
            f"| {r.done / total if total else 0:.0f} "
            f"| {run.per_issuance_ms(run.client):.2f} | {r.errors} "
            f"| {r.retries} |"
        )
    return out


# == microbenchmarks ===========================================================================
@dataclass
class Piece:
    name: str
    cpu_us: float
    wall_us: float = 0.0
    user_us: float = 0.0
    system_us: float = 0.0
    note: str = ""


def timed(fn: Callable[[], object], rounds: int, repeats: int = 5) -> tuple[float, float]:
    """Median over `repeats` batches of (thread CPU µs, wall µs) per call."""
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.thread_time(), time.perf_counter()
        for _ in range(rounds):
            fn()
        cpu.append((time.thread_time() - c0) / rounds * 1e6)
        wall.append((time.perf_counter() - w0) / rounds * 1e6)
    return statistics.median(cpu), statistics.median(wall)


def micro_crypto(setup: Setup) -> list[Piece]:
    from protocols.acme.jws import parse_jws, verify

    account = ec.generate_private_key(ec.SECP256R1())
    kid = "https://127.0.0.1:14000/acct/1"
    body = sign_jws(
        account,
        json.dumps({"identifiers": [{"type": "dns", "value": "k1.bench.example.com"}]}).encode(),
        {"nonce": secrets.token_urlsafe(16), "url": "https://127.0.0.1:14000/new-order", "kid": kid},
    )
    keys = {kid: account.public_key()}
    tetra_jwk = parse_jwk(jwk_from_key(account.public_key()))
    csr_der = make_csr(["k1.bench.example.com"])[0].public_bytes(Encoding.DER)
    ca_key = load_pem_private_key(setup.ca[1].read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    issuer = Issuer(ca_key, x509.load_pem_x509_certificate(setup.ca[0].read_bytes()))
    names, public_key = csr_names(csr_der)
    outer = json.loads(body)
    signed = f"{outer['protected']}.{outer['payload']}".encode()
    raw = b64d(outer["signature"])
    der_signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = account.public_key()

    def issue() -> None:
        cert = issuer.issue(public_key, names)
        cert.public_bytes(Encoding.DER)
        cert.public_bytes(Encoding.PEM)

    pieces = []
    for name, fn, rounds in [
        ("ES256 JWS verify (parse + verify), this server's", lambda: verify_es256(body, keys), 2000),
        ("ES256 JWS verify, Tetra's parse_jws + verify (reference)", lambda: verify(parse_jws(body), tetra_jwk), 2000),
        ("CSR load + signature verify + SAN read", lambda: csr_names(csr_der), 2000),
        ("certificate build + sign (P-256) + DER/PEM", issue, 1000),
        (
            "(of which) P-256 ECDSA verify alone, cryptography",
            lambda: public.verify(der_signature, signed, ECDSA_SHA256),
            2000,
        ),
        ("(of which) P-256 ECDSA sign alone, cryptography", lambda: account.sign(signed, ECDSA_SHA256), 2000),
    ]:
        cpu, wall = timed(fn, rounds)
        pieces.append(Piece(name, cpu, wall))
    return pieces


def micro_sqlite(work: Path, rounds: int = 300) -> Piece:
    """INSERT of one nonce row + COMMIT, WAL, synchronous=FULL, on this machine's disk."""
    db = open_db(str(work / "micro.sqlite"))
    for _ in range(20):
        db.execute("BEGIN")
        db.execute("INSERT INTO nonces_used(nonce, used) VALUES (?, ?)", (secrets.token_urlsafe(16), time.time()))
        db.execute("COMMIT")
    nonces = [secrets.token_urlsafe(16) for _ in range(rounds)]
    r0, w0 = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter()
    for nonce in nonces:
        db.execute("BEGIN")
        db.execute("INSERT INTO nonces_used(nonce, used) VALUES (?, ?)", (nonce, time.time()))
        db.execute("COMMIT")
    r1, wall = resource.getrusage(resource.RUSAGE_THREAD), time.perf_counter() - w0
    db.close()
    user = (r1.ru_utime - r0.ru_utime) / rounds * 1e6
    system = (r1.ru_stime - r0.ru_stime) / rounds * 1e6
    return Piece(
        "sqlite3 INSERT + COMMIT, WAL, synchronous=FULL",
        user + system,
        wall / rounds * 1e6,
        user,
        system,
        "calling thread only: the journal's work in kernel threads (jbd2) is not counted, nor for the server",
    )


def _read_response(sock: ssl.SSLSocket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
    while len(rest) < length:
        rest += sock.recv(65536)


def micro_tls(setup: Setup, concurrency: int, per_connection: int) -> Piece:
    """Server CPU per keep-alive request/response over TLS 1.3: a 700-byte POST answered with a
    fixed 400-byte body (route /noop: llhttp framing, the Protocol, the TLS record layer, the
    syscalls), read from /proc; the client is blocking sockets in this process."""
    proc, url = start_floor(setup)
    port = int(url.split(":")[2].split("/")[0])
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = (
        f"POST /noop HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/jose+json\r\n"
        f"Content-Length: 700\r\n\r\n"
    ).encode() + b"y" * 700
    sockets = [context.wrap_socket(socket.create_connection(("127.0.0.1", port))) for _ in range(concurrency)]

    def run(sock: ssl.SSLSocket, n: int) -> None:
        for _ in range(n):
            sock.sendall(request)
            _read_response(sock)

    try:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(run, sockets, [200] * concurrency))  # warm-up, handshakes done
            u0, s0 = user_system(proc.pid)
            w0 = time.perf_counter()
            list(pool.map(run, sockets, [per_connection] * concurrency))
            wall = time.perf_counter() - w0
            u1, s1 = user_system(proc.pid)
    finally:
        for sock in sockets:
            sock.close()
        stop(proc)
    n = concurrency * per_connection
    user, system = (u1 - u0) / n * 1e6, (s1 - s0) / n * 1e6
    return Piece(
        f"TLS 1.3 keep-alive round trip, server CPU, {concurrency} connection(s)",
        user + system,
        wall / n * 1e6,
        user,
        system,
        f"{n / wall:.0f} round trips/s",
    )


def start_responder(token: str, value: str) -> tuple[subprocess.Popen[bytes], int]:
    """bench_acme's http-01 responder (aiohttp), alone in a child process."""
    code = (
        f"import asyncio, sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from bench_acme import http01_responder, free_port\n"
        "async def main():\n"
        f"    port = free_port(); await http01_responder(port, {{{token!r}: {value!r}}}); print(port, flush=True)\n"
        "    await asyncio.sleep(10**6)\n"
        "asyncio.run(main())"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


async def micro_validation_async(dns_address: str, port: int, token: str, value: str, rounds: int) -> list[Piece]:
    import dns.asyncresolver

    client = await DnsClient.connect(dns_address)
    host, dns_port = dns_address.rsplit(":", 1)
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(dns_port)
    resolver.cache = None
    name = "k1.bench.example.com"

    async def with_dns() -> None:
        status, body = await http01_fetch(client, name, port, token)
        assert status == 200 and body.rstrip() == value.encode(), (status, body)

    async def without_dns() -> None:
        status, body = await http01_fetch(None, "127.0.0.1", port, token)
        assert status == 200 and body.rstrip() == value.encode(), (status, body)

    async def a_only() -> None:
        assert await client.a(name) == "127.0.0.1"

    async def a_dnspython() -> None:
        answer = await resolver.resolve(name, "A", search=False)
        assert answer.rrset is not None

    pieces = []
    for label, fn in [
        ("http-01 fetch over loopback, no DNS (new TCP connection, GET, llhttp)", without_dns),
        ("http-01 fetch over loopback with a DNS A query first", with_dns),
        ("DNS A query alone, this server's UDP client", a_only),
        ("DNS A query alone, dnspython asyncresolver (Tetra's resolver)", a_dnspython),
    ]:
        for _ in range(50):
            await fn()
        cpu, wall = [], []
        for _ in range(5):
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(rounds):
                await fn()
            cpu.append((time.process_time() - c0) / rounds * 1e6)
            wall.append((time.perf_counter() - w0) / rounds * 1e6)
        pieces.append(Piece(label, statistics.median(cpu), statistics.median(wall), note="fetching side's CPU"))
    return pieces


def micro_validation(dns_address: str, rounds: int = 200) -> list[Piece]:
    token, value = "t" * 43, "t" * 43 + ".thumbprint"
    responder, port = start_responder(token, value)
    try:
        return uvloop.run(micro_validation_async(dns_address, port, token, value, rounds))
    finally:
        stop(responder)


def micro_table(pieces: list[Piece]) -> list[str]:
    out = ["| piece | CPU µs | user µs | system µs | wall µs | note |", "|---|---|---|---|---|---|"]
    for p in pieces:
        split = (f"{p.user_us:.0f} | {p.system_us:.0f}") if p.user_us or p.system_us else " | "
        out.append(f"| {p.name} | **{p.cpu_us:.0f}** | {split} | {p.wall_us:.0f} | {p.note} |")
    return out


def breakdown(pieces: dict[str, Piece], runs: list[Run]) -> list[str]:
    """The pieces one issuance cannot do without, times how often it needs each, beside the measured
    server CPU. Each piece twice: as measured alone in a hot loop, and as it cost inside the server
    during the run (thread CPU timers around the call; the TLS round trip and the http-01 fetch are
    not timed inside, their hot-loop figure stands in for both, marked *). What the in-server sum
    leaves is the glue: JSON, nonces, routing, tasks and futures, the event loop, the transport of
    bodies larger than the round trip's."""
    head = "| piece | µs alone |"
    rule = "|---|---|"
    for run in runs:
        c = run.result.concurrency
        head += f" c{c}: count / issuance | c{c}: µs alone × count | c{c}: µs in server | c{c}: in server × count |"
        rule += "---|---|---|---|"
    out = [head, rule]
    spec = [
        ("ES256 JWS verify (parse + verify)", "jws", "jws", lambda run: run.requests / (run.certificates or 1)),
        ("sqlite3 commit (alone: 1 INSERT; in server: the request's statements)", "commit", "commit", None),
        ("CSR load + verify", "csr", "csr", lambda run: 1.0),
        ("certificate build + sign + DER/PEM", "cert", "cert", lambda run: 1.0),
        ("http-01 fetch with a DNS query", "fetch_dns", "", lambda run: 1.0),
        ("TLS keep-alive round trip", "tls", "", lambda run: run.requests / (run.certificates or 1)),
    ]
    alone_sum = [0.0] * len(runs)
    server_sum = [0.0] * len(runs)
    for label, alone_key, server_key, count_of in spec:
        first_alone = pieces["tls1" if alone_key == "tls" else alone_key].cpu_us
        line = f"| {label} | {first_alone:.0f} |"
        for i, run in enumerate(runs):
            alone = pieces[f"tls{run.result.concurrency}" if alone_key == "tls" else alone_key].cpu_us
            certs = run.certificates or 1
            count = count_of(run) if count_of else run.commits / certs
            situ = run.in_server.get(server_key) if server_key else None
            each = situ if situ is not None else alone
            alone_sum[i] += alone * count
            server_sum[i] += each * count
            shown = f"{situ:.0f}" if situ is not None else f"{alone:.0f}*"
            line += f" {count:.2f} | {alone * count:.0f} | {shown} | {each * count:.0f} |"
        out.append(line)
    measured = [(run.user + run.system) / run.result.done * 1e6 if run.result.done else 0.0 for run in runs]
    rows = [
        ("**sum of the pieces**", [f"**{a:.0f}**" for a in alone_sum], [f"**{b:.0f}**" for b in server_sum]),
        ("measured server CPU per issuance", [f"{m:.0f}" for m in measured], [f"{m:.0f}" for m in measured]),
        (
            "measured − sum",
            [f"{m - a:.0f}" for m, a in zip(measured, alone_sum, strict=True)],
            [f"{m - b:.0f}" for m, b in zip(measured, server_sum, strict=True)],
        ),
    ]
    for label, alone_cells, server_cells in rows:
        line = f"| {label} | |"
        for a, b in zip(alone_cells, server_cells, strict=True):
            line += f" | {a} | | {b} |"
        out.append(line)
    return out


# == main ======================================================================================
async def load_runs(setup: Setup, args: argparse.Namespace, tokens: dict[str, str]) -> list[Run]:
    key = ec.generate_private_key(ec.SECP256R1())
    csrs = [make_csr([f"k{i}.bench.example.com"], key)[0].public_bytes(Encoding.DER) for i in range(args.pool)]
    pool = make_pool(csrs)
    responder = await http01_responder(setup.http01_port, tokens)
    runs = []
    try:
        passed = await honesty_checks(setup, tokens)
        print(f"honesty checks passed: {'; '.join(dict.fromkeys(passed))}", file=sys.stderr, flush=True)
        for concurrency in args.concurrency:
            run = await load_run(setup, concurrency, args.seconds, pool, tokens)
            runs.append(run)
            print(load_table([run])[-1], file=sys.stderr, flush=True)
            if run.result.first_error:
                print(f"    first error: {run.result.first_error}", file=sys.stderr)
    finally:
        await responder.cleanup()
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured window per load run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--commit",
        choices=["group", "each", "inline"],
        default="inline",
        help="inline (default): one commit per event-loop iteration, in the loop's thread; group: concurrent "
        "requests share a commit, in a writer thread; each: one commit per request, in that thread",
    )
    parser.add_argument(
        "--no-nonce-rows",
        action="store_true",
        help="keep consumed nonces in memory only (POST-as-GET requests then write nothing)",
    )
    parser.add_argument("--pool", type=int, default=2000, help="distinct pre-built CSRs (names)")
    parser.add_argument("--skip-load", action="store_true", help="microbenchmarks only")
    parser.add_argument("--skip-micro", action="store_true", help="load runs only")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server log, databases)")
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-acme-floor-", dir=os.environ.get("TMPDIR", "/tmp")))
    dns_proc, dns_address = start_dns()
    setup = Setup(
        work,
        self_signed(work, "tls", ca=False),
        self_signed(work, "ca", ca=True),
        dns_address,
        free_port(),
        args.commit,
        not args.no_nonce_rows,
    )
    runs: list[Run] = []
    pieces: dict[str, Piece] = {}
    try:
        if not args.skip_load:
            runs = uvloop.run(load_runs(setup, args, {}))
        if not args.skip_micro:
            crypto = micro_crypto(setup)
            pieces.update(jws=crypto[0], jws_tetra=crypto[1], csr=crypto[2], cert=crypto[3])
            pieces.update(ecdsa_verify=crypto[4], ecdsa_sign=crypto[5])
            pieces["commit"] = micro_sqlite(work)
            pieces["tls1"] = micro_tls(setup, 1, 20000)  # /proc counts 10 ms ticks: enough requests
            pieces["tls8"] = micro_tls(setup, 8, 2500)
            validation = micro_validation(dns_address)
            pieces.update(fetch=validation[0], fetch_dns=validation[1], dns=validation[2], dns_tetra=validation[3])
    finally:
        stop(dns_proc)
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    nonce_note = "in memory only" if args.no_nonce_rows else "a row per consumed nonce"
    print(
        f"\nMinimal ACME server (bench_acme_floor.py): {args.seconds:g} s per run, commit mode {args.commit}, "
        f"nonces {nonce_note}, http-01 with a DNS query, one server process; Python {sys.version.split()[0]}, "
        f"SQLite {sqlite3.sqlite_version}, {ssl.OPENSSL_VERSION}\n"
    )
    if runs:
        print("\n".join(load_table(runs)))
    if pieces:
        print("\nThe pieces, measured alone (CPU µs per operation; median of 5 batches)\n")
        print("\n".join(micro_table(list(pieces.values()))))
    if runs and pieces:
        print("\nWhat an issuance needs of each piece, against the measured server CPU (µs per issuance)\n")
        print("\n".join(breakdown(pieces, runs)))


if __name__ == "__main__":
    main()
