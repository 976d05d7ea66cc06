"""Fixtures for bench_scep.py: the two SCEP servers (Tetra's `tetra serve` from a `tetra init`
directory, and micromdm's `scepserver` from Debian's `scep` package), the enrolling devices
and the PKCSReq messages both are sent. Nothing here is timed.

micromdm's scepserver (Go) decrypts with its CA key (it has no separate RA), signs with an
RSA CA key (`scepserver ca -init -keySize 2048`, as the issue measured it) and keeps its
issued certificates as files in its depot folder. Each start gets a fresh depot holding the
same CA, as Tetra gets a fresh database, so every row begins from the same state: the
same messages can then be sent again in the next row, and no server has seen them before.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import shutil
import subprocess
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import core_setup
from bench_acme import stop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID, NameOID

from tests.tetra_process import free_port, init_ca, tetra_command

ROOT = Path(__file__).resolve().parent.parent
OPERATION = "operation=PKIOperation"
PKI_MESSAGE = "application/x-pki-message"
KEY_BITS = 2048  # SCEP returns the certificate encrypted to the device's key: RSA key transport


# -- devices and messages ------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """One enrolling device: a fresh RSA key, its CSR (with the challenge) and the self-signed
    certificate that signs its PKCSReq (RFC 8894 §2.3), all DER so they cross process pools."""

    key_der: bytes
    csr_der: bytes
    signer_der: bytes

    def key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_der_private_key(self.key_der, None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    def csr(self) -> x509.CertificateSigningRequest:
        return x509.load_der_x509_csr(self.csr_der)

    def signer(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.signer_der)


def _make_device(job: tuple[int, str]) -> Device:
    index, challenge = job
    key = rsa.generate_private_key(65537, KEY_BITS)
    name = f"device{index}.bench.example.com"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
        .sign(key, hashes.SHA256())
    )
    now = dt.datetime.now(dt.UTC)
    signer = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    der = serialization.Encoding.DER
    key_der = key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Device(key_der, csr.public_bytes(der), signer.public_bytes(der))


def make_devices(count: int, challenge: str) -> list[Device]:
    """`count` devices, their RSA keys generated on every CPU (about 45 ms each on one core)."""
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(_make_device, [(i, challenge) for i in range(count)], chunksize=16))


def pkcsreq_request(path: str, message: bytes) -> bytes:
    """One raw HTTP/1.1 PKIOperation POST (RFC 8894 §4.3; keep-alive is HTTP/1.1's default)."""
    head = (
        f"POST {path}?{OPERATION} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {PKI_MESSAGE}\r\n"
        f"Content-Length: {len(message)}\r\n\r\n"
    )
    return head.encode() + message


# -- talking to a server outside the measured window ---------------------------------------------


def http_get(port: int, target: str) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", target)
        reply = conn.getresponse()
        return reply.status, reply.getheader("Content-Type") or "", reply.read()
    finally:
        conn.close()


def http_post(port: int, raw: bytes) -> tuple[int, bytes]:
    """Send one pre-built raw request; (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.sendall(raw)
        reply = http.client.HTTPResponse(conn.sock, method="POST")
        reply.begin()
        return reply.status, reply.read()
    finally:
        conn.close()


def recipient_certificate(port: int, path: str) -> x509.Certificate:
    """GetCACert (RFC 8894 §4.2), and the certificate a PKCSReq is encrypted to: the RA
    certificate (the one that is not a CA) of a CA/RA bundle, else the CA certificate alone."""
    status, content_type, body = http_get(port, f"{path}?operation=GetCACert")
    if status != 200:
        raise SystemExit(f"GetCACert at {path}: HTTP {status} {body[:200]!r}")
    if content_type.startswith("application/x-x509-ca-cert"):
        return x509.load_der_x509_certificate(body)
    certs = pkcs7.load_der_pkcs7_certificates(body)

    def is_ca(cert: x509.Certificate) -> bool:
        try:
            return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except x509.ExtensionNotFound:
            return False

    return next((c for c in certs if not is_ca(c)), certs[0])


def wait_http(port: int, path: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until GetCACaps answers 200; fails at once, with the log, if the server exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            if http_get(port, f"{path}?operation=GetCACaps")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"no SCEP on port {port} after {timeout:.0f} s: {log.read_text(errors='replace')[-2000:]}")


# -- micromdm's scepserver -----------------------------------------------------------------------


class MicromdmServer:
    """`scepserver` on a free port with `-challenge`, a fresh depot (the same RSA-2048 CA) per start."""

    label = "micromdm scepserver"
    path = "/scep"
    recipient: x509.Certificate | None = None  # from GetCACert: the CA certificate (it decrypts)

    def __init__(self, work: Path, challenge: str) -> None:
        self.work, self.challenge = work, challenge
        self.ca = work / "ca-depot"
        done = subprocess.run(
            ["scepserver", "ca", "-init", "-depot", str(self.ca), "-keySize", str(KEY_BITS)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"scepserver ca -init failed: {done.stderr[-1000:]}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        depot = self.work / f"depot-{self.starts}"
        shutil.copytree(self.ca, depot)
        self.port = free_port()
        self.log = self.work / "scepserver.log"
        command = ["scepserver", "-depot", str(depot), "-port", str(self.port), "-challenge", self.challenge]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        wait_http(self.port, self.path, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


# -- Tetra ---------------------------------------------------------------------------------------


class TetraScepServer:
    """`tetra serve` with SCEP only, from a `tetra init` directory (its demo SCEP profile and
    static challenge), on its plain-HTTP listener, with a fresh SQLite database per start and
    the server's default worker count."""

    label = "Tetra"
    path = "/scep"
    recipient: x509.Certificate | None = None  # from GetCACert: the RA certificate

    def __init__(self, work: Path) -> None:
        self.work = work
        self.ca_dir = work / "tetra"
        init_ca(self.ca_dir, free_port(), free_port())
        self.challenge = demo_challenge(self.ca_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.fresh: core_setup.FreshDatabase | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.fresh = fresh = core_setup.fresh_database("sqlite", self.work / "db", f"scep-{self.starts}")
        self.port = free_port()
        self.log = self.work / "tetra.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "TETRA_DATABASE__URL": f'"{fresh.url}"',
            "TETRA_SERVER__HTTP": f"127.0.0.1:{self.port}",
            "TETRA_SERVER__HTTPS": f"127.0.0.1:{free_port()}",
            "TETRA_SERVER__PROTOCOLS": '["scep"]',
            "TETRA_LOGGING__LEVEL": "warning",
            # Every load client connects from 127.0.0.1 ([server] max_connections_per_address).
            "TETRA_SERVER__MAX_CONNECTIONS_PER_ADDRESS": "1000000",
        }
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*tetra_command(), "serve", "--config", str(self.ca_dir / "tetra.toml")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_http(self.port, self.path, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None
        if self.fresh is not None:
            self.fresh.drop()
            self.fresh = None


def demo_challenge(ca_dir: Path) -> str:
    """The static challenge `tetra init` wrote for its demo SCEP profile. PROVISIONAL."""
    return os.environ.get("TETRA_BENCH_SCEP_CHALLENGE", "bench-challenge")
