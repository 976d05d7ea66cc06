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

import http.client
import os
import shutil
import subprocess
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import core_setup
from asn1crypto import cms
from bench_acme import stop
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests import scep_client
from tests.tetra_process import free_port, init_ca, tetra_command

ROOT = Path(__file__).resolve().parent.parent
OPERATION = "operation=PKIOperation"
PKI_MESSAGE = "application/x-pki-message"
KEY_BITS = 2048  # SCEP returns the certificate encrypted to the device's key: RSA key transport
CIPHER = "aes128"  # the PKCSReq envelope's content cipher (sscep's `-E aes`); SHA-256 signatures


# -- devices and messages ------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """One enrolling device: a fresh RSA key, the self-signed certificate that signs its PKCSReq
    (RFC 8894 §2.3), and one PKCSReq per server (its CSR carries the static challenge), built by
    the tests' SCEP client. DER and plain data, so that it crosses the process pool."""

    name: str
    key_der: bytes
    signer_der: bytes
    messages: dict[str, scep_client.Message]  # server label -> the PKCSReq built for it

    def requester(self) -> scep_client.Requester:
        key = serialization.load_der_private_key(self.key_der, None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return scep_client.Requester(key, x509.load_der_x509_certificate(self.signer_der))


def _make_device(job: tuple[int, str, dict[str, bytes]]) -> Device:
    index, challenge, recipients = job
    name = f"device{index}.bench.example.com"
    requester = scep_client.Requester.fresh(name, KEY_BITS)
    messages = {
        label: scep_client.pkcs_req(
            requester, x509.load_der_x509_certificate(der), name, [name], challenge=challenge, cipher=CIPHER
        )
        for label, der in recipients.items()
    }
    der = serialization.Encoding.DER
    key_der = requester.key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Device(name, key_der, requester.certificate.public_bytes(der), messages)


def make_devices(count: int, challenge: str, recipients: dict[str, x509.Certificate]) -> list[Device]:
    """`count` devices, each with a PKCSReq for every server in `recipients` (label -> the
    certificate its messages are encrypted to), made on every CPU: an RSA-2048 key takes about
    45 ms on one core here."""
    ders = {label: cert.public_bytes(serialization.Encoding.DER) for label, cert in recipients.items()}
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(_make_device, [(i, challenge, ders) for i in range(count)], chunksize=16))


@dataclass(frozen=True)
class Verdict:
    """One sample CertRep, read in full."""

    problem: str | None  # what is wrong with it (None: SUCCESS with a certificate for the device's key)
    deviation: str | None  # how a server we compare with departs from RFC 8894, when it does
    certificate: x509.Certificate | None  # the device's certificate


def read_sample(device: Device, label: str, body: bytes, recipient: x509.Certificate, *, strict: bool) -> Verdict:
    """A full parse of one CertRep: signed by the server, transactionID and nonces as §3.3.2 says,
    SUCCESS, a certificate for the device's key. Not `strict` (a server we compare with, not
    ours), a reply the strict parse refuses is still checked for its certificate by decrypting its
    envelope, and the refusal is only noted."""
    requester = device.requester()
    try:
        reply = scep_client.parse_cert_rep(body, device.messages[label], requester.key, recipient)
        if reply.status != scep_client.SUCCESS:
            return Verdict(f"pkiStatus {reply.status}, failInfo {reply.fail_info}: {reply.fail_info_text}", None, None)
        certificates, deviation = reply.certificates, None
    except (AssertionError, ValueError, KeyError) as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1].line
        deviation = f"the strict CertRep parse refuses it: {type(exc).__name__} {exc} at `{where}`"
        if strict:
            return Verdict(deviation, None, None)
        enveloped = cms.ContentInfo.load(body)["content"]["encap_content_info"]["content"].native
        certificates = openssl_decrypt_certificates(enveloped, requester)
    mine = [c for c in certificates if c.public_key() == requester.key.public_key()]
    if not mine:
        return Verdict("no certificate for the device's key in the reply", deviation, None)
    return Verdict(None, deviation, mine[0])


def openssl_decrypt_certificates(enveloped: bytes, requester: scep_client.Requester) -> list[x509.Certificate]:
    """The certificates in a CertRep's envelope, read by `openssl cms`: scepserver's envelope is
    BER (constructed OCTET STRINGs) encrypted with DES-CBC whatever the request used, which
    neither the tests' client (written to the DER Tetra sends) nor cryptography reads."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "env.der").write_bytes(enveloped)
        (folder / "cert.pem").write_bytes(requester.certificate.public_bytes(serialization.Encoding.PEM))
        (folder / "key.pem").write_bytes(
            requester.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        decrypt = ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER", "-in", str(folder / "env.der")]
        decrypt += ["-recip", str(folder / "cert.pem"), "-inkey", str(folder / "key.pem")]
        decrypt += ["-provider", "legacy", "-provider", "default"]  # scepserver answers in single DES
        plain = subprocess.run(decrypt, capture_output=True, check=True)
        certs = subprocess.run(
            ["openssl", "pkcs7", "-inform", "DER", "-print_certs"], input=plain.stdout, capture_output=True, check=True
        )
    return x509.load_pem_x509_certificates(certs.stdout)


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
    certs = scep_client.certs_only(body)
    return next((c for c in certs if not scep_client.is_ca(c)), certs[0])


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
    the server's default worker count unless `workers` says otherwise."""

    label = "Tetra"
    path = "/scep"
    recipient: x509.Certificate | None = None  # from GetCACert: the RA certificate

    def __init__(self, work: Path, workers: int | None = None) -> None:
        self.work, self.workers = work, workers  # None: the server's default ([server] workers)
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
        if self.workers is not None:
            env["TETRA_SERVER__WORKERS"] = str(self.workers)
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
    """The static challenge `tetra init` wrote for its demo SCEP profile ("device")."""
    return (ca_dir / "secrets" / "scep-challenge").read_text().strip()
