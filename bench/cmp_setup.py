"""Fixtures for bench_cmp.py: the two CMP servers (Tetra's `tetra serve` and OpenSSL's mock,
`openssl cmp -port`), their credentials, and the ir messages both are sent. Nothing here is timed.

Tetra runs from bench_core's CA directory (`tetra init`'s own code, software P-256 issuing CA,
profile bench-tls: tls-server without the pkilint gate, which the core rows use too), CMP only,
on its plain-HTTP listener, SQLite, with a shared secret (`tetra cmp secret add`) for MAC rows
and, for signature rows, a certificate it issued itself over CMP (MAC ir, implicitConfirm)
before any timing. The mock has the vectors' credentials (tests/vectors/cmp): the same
reference and secret, server.pem to sign with, root.pem to trust client.pem's signatures, and
issued.pem as the one certificate it answers every enrolment with.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import core_setup
from bench_acme import stop
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ca.keys import generate_private_key
from tests import cmp_client
from tests.cmp_client import Client, Mac, Signature
from tests.cmp_mock import VECTORS, Exchange, MockServer
from tests.tetra_process import free_port, tetra_command

ROOT = Path(__file__).resolve().parent.parent
REFERENCE, SECRET = "bench", "bench-cmp-shared-secret"
SIGNER_NAME = "cmp-client.bench.example.com"  # the signature rows' own name (a certificate enrols its own names)
TETRA_PATH, MOCK_PATH = "/.well-known/cmp", "/"
CONTENT_TYPE = "application/pkixcmp"


def subject(name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


# -- credentials as plain data (they cross the process pool) ------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """How a row's messages are protected: MAC with REFERENCE/SECRET, or a signature by
    ``key_der`` whose certificate is ``cert_der``; ``name`` is the DNS name each ir asks for
    (a fresh one per message when empty)."""

    kind: str  # "mac" or "sig"
    key_der: bytes = b""
    cert_der: bytes = b""
    name: str = ""

    def protection(self) -> Mac | Signature:
        if self.kind == "mac":
            return Mac(REFERENCE.encode(), SECRET.encode())
        key = serialization.load_der_private_key(self.key_der, None)
        return Signature(key, x509.load_der_x509_certificate(self.cert_der))  # type: ignore[arg-type]


def der_credentials(key: object, certificate: x509.Certificate, name: str) -> Credentials:
    key_der = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Credentials("sig", key_der, certificate.public_bytes(serialization.Encoding.DER), name)


def mock_signer() -> Credentials:
    """client.pem (under the vectors' root, which the mock trusts) and its key."""
    key = serialization.load_pem_private_key((VECTORS / "client.key").read_bytes(), None)
    return der_credentials(key, x509.load_pem_x509_certificate((VECTORS / "client.pem").read_bytes()), SIGNER_NAME)


# -- messages ------------------------------------------------------------------------------------------


def cmp_post(path: str, message: bytes, *, close: bool = False) -> bytes:
    """One raw HTTP/1.1 POST of a PKIMessage (RFC 9811); ``close`` asks the server to close after."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {len(message)}\r\n"
    )
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + message


def enrolment(credentials: Credentials, index: int) -> tuple[cmp_client.Outgoing, object]:
    """One ir with implicitConfirm for a fresh P-256 key (and, for MAC rows, a fresh name)."""
    key = generate_private_key("ec-p256")
    name = credentials.name or f"device{index}.cmp.bench.example.com"
    return Client(credentials.protection()).ir(key, subject(name), [name], implicit_confirm=True), key


def _ir_ders(job: tuple[Credentials, int, int]) -> list[bytes]:
    credentials, start, count = job
    return [enrolment(credentials, i)[0].der for i in range(start, start + count)]


def make_irs(credentials: Credentials, count: int, offset: int = 0) -> list[bytes]:
    """``count`` ir PKIMessages, built on every CPU before any timing."""
    chunk = 250
    jobs = [(credentials, offset + at, min(chunk, count - at)) for at in range(0, count, chunk)]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return [der for part in pool.map(_ir_ders, jobs) for der in part]


# -- the servers -----------------------------------------------------------------------------------------


def wait_cmp(port: int, path: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until a POST of nothing answers (any HTTP status); fails at once, with the log, if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("POST", path, body=b"\x30\x00", headers={"Content-Type": CONTENT_TYPE})
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no CMP on port {port} after {timeout:.0f} s: {log.read_text(errors='replace')[-2000:]}")


class TetraCmpServer:
    """`tetra serve` with CMP only (profile ``profile``), a fresh SQLite database per start, the
    shared secret added and a signing certificate enrolled before the load."""

    label = "Tetra"
    path = TETRA_PATH
    close = False  # keep-alive

    def __init__(self, ca_dir: Path, work: Path, profile: str, workers: int | None = None) -> None:
        self.ca_dir, self.work, self.workers = ca_dir, work, workers
        with (ca_dir / "tetra.toml").open("a") as config:
            config.write(f'\n[cmp]\ndefault_profile = "{profile}"\n')
        self.ra = x509.load_pem_x509_certificate((ca_dir / "ra" / "ra.pem").read_bytes())
        self.proc: subprocess.Popen[bytes] | None = None
        self.fresh: core_setup.FreshDatabase | None = None
        self.signer: Credentials | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.fresh = fresh = core_setup.fresh_database("sqlite", self.work / "db", f"cmp-{self.starts}")
        self.port = free_port()
        self.log = self.work / "tetra.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "TETRA_DATABASE__URL": json.dumps(fresh.url),
            "TETRA_SERVER__HTTP": f"127.0.0.1:{self.port}",
            "TETRA_SERVER__HTTPS": f"127.0.0.1:{free_port()}",
            "TETRA_SERVER__PROTOCOLS": '["cmp"]',
            "TETRA_LOGGING__LEVEL": "warning",
            # Every load client connects from 127.0.0.1 ([server] max_connections_per_address).
            "TETRA_SERVER__MAX_CONNECTIONS_PER_ADDRESS": "1000000",
        }
        if self.workers is not None:
            env["TETRA_SERVER__WORKERS"] = str(self.workers)
        config = ["--config", str(self.ca_dir / "tetra.toml")]
        added = subprocess.run(
            [*tetra_command(), "cmp", "secret", "add", REFERENCE, "--secret", SECRET, *config],
            env=env,
            capture_output=True,
            text=True,
        )
        if added.returncode != 0:
            raise SystemExit(f"tetra cmp secret add failed: {added.stderr[-1000:]}")
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*tetra_command(), "serve", *config], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_cmp(self.port, self.path, self.proc, self.log)
        self.signer = self.enrol_signer()

    def enrol_signer(self) -> Credentials:
        """The signature rows' identity: a certificate Tetra issues now over CMP (MAC ir)."""
        request, key = enrolment(Credentials("mac", name=SIGNER_NAME), 0)
        with Exchange(self.port, self.path) as exchange:
            status, _, body = exchange.post(request.der)
        reply = cmp_client.read_reply(body) if status == 200 else None
        if reply is None or reply.certificate is None:
            raise SystemExit(f"Tetra did not issue the signing certificate: HTTP {status} {reply}")
        return der_credentials(key, reply.certificate, SIGNER_NAME)

    def credentials(self, kind: str) -> Credentials:
        assert self.signer is not None
        return Credentials("mac") if kind == "mac" else self.signer

    def reply_signer(self) -> x509.Certificate:
        return self.ra

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        if self.fresh is not None:
            self.fresh.drop()
            self.fresh = None


class OpenSslMock:
    """`openssl cmp -port` (tests/cmp_mock.py) with the bench's reference and secret. It answers
    one connection at a time and closes a connection when its transaction ends, so the load sends
    each ir on a connection of its own (`Connection: close`)."""

    label = "openssl cmp mock"
    path = MOCK_PATH
    close = True

    def __init__(self, work: Path) -> None:
        self.work = work
        self.server: MockServer | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.server = MockServer(REFERENCE, SECRET, log=self.work / "mock.log").start()
        self.port, self.proc = self.server.port, self.server.proc

    def credentials(self, kind: str) -> Credentials:
        return Credentials("mac") if kind == "mac" else mock_signer()

    def reply_signer(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate((VECTORS / "server.pem").read_bytes())

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = self.proc = None


CmpServer = TetraCmpServer | OpenSslMock


@dataclass(frozen=True)
class Sample:
    """One sample enrolment read in full: what is wrong (None: an ip with a certificate, the
    reply's protection, transactionID, recipNonce and implicitConfirm as asked), and the
    certificate (for Tetra: it must certify the request's key)."""

    problem: str | None
    certificate: x509.Certificate | None


def sample(server: CmpServer, credentials: Credentials, index: int) -> Sample:
    request, key = enrolment(credentials, index)
    with Exchange(server.port, server.path) as exchange:
        status, content_type, body = exchange.post(request.der)
    if status != 200 or content_type != CONTENT_TYPE:
        return Sample(f"HTTP {status} {content_type}: {body[:200]!r}", None)
    reply = cmp_client.read_reply(body)
    if reply.kind != "ip" or reply.certificate is None:
        return Sample(f"{reply.kind} {reply.status!r} {reply.fail_info} {reply.text}", None)
    protection = credentials.protection()
    try:
        cmp_client.check_protection(
            reply, protection, trusted=None if credentials.kind == "mac" else server.reply_signer()
        )
    except Exception as exc:  # what a client would refuse; reported, not raised
        return Sample(f"reply protection: {type(exc).__name__} {exc}", reply.certificate)
    echoed = (reply.message.transaction_id, reply.message.recip_nonce)
    if echoed != (request.header.transaction_id, request.header.sender_nonce):
        return Sample("transactionID or recipNonce not echoed", reply.certificate)
    if not reply.message.implicit_confirm:
        return Sample("implicitConfirm asked for and not granted", reply.certificate)
    if isinstance(server, TetraCmpServer) and reply.certificate.public_key() != key.public_key():  # type: ignore[attr-defined]
        return Sample("the certificate is not for the request's key", reply.certificate)
    return Sample(None, reply.certificate)


def requests_for(server: CmpServer, irs: Sequence[bytes]) -> list[bytes]:
    return [cmp_post(server.path, der, close=server.close) for der in irs]
