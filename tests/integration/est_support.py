"""An EST-enabled `tetra serve` for the EST tests, and curl/openssl as RFC 7030's examples use them.

`est_server(ca_dir, tmp_path)` (the fixture in each test module) adds test profiles and an
[est] section to a fresh demo CA, starts `tetra serve` with EST on free loopback ports, and
creates the HTTP Basic user ``alice`` (password ``alice-password``, any profile). Labels:

- ``iot`` -> profile ``device`` (auto approval); no label: ``device`` too;
- ``held`` (manual approval), ``keygen`` (server-generated keys), ``pop`` (PoP linking required),
  ``factory`` (IDevID bootstrap: certificates of ``factory-ca.pem`` authorise simpleenroll).
"""

from __future__ import annotations

import base64
import datetime as dt
import sqlite3
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca.cms.verify import parse_certs_only
from tests.integration.serverproc import ServerProcess

USER, PASSWORD = "alice", "alice-password"

EST_CONFIG = """
[est]
default_profile = "device"
retry_after = 2
password_failures = 4
password_window = 600

[est.labels]
iot = "device"

[est.profiles.pop]
pop = "required"

[est.profiles.factory]
trust_anchors = ["factory-ca.pem"]
"""


def _profile_from_device(profiles: Path, name: str, *, approval: str = "auto", keygen: bool = False) -> None:
    text = (profiles / "device.toml").read_text().replace('approval = "auto"', f'approval = "{approval}"')
    if keygen:
        text = text.replace("[keys]\n", "[keys]\nserver_generation = true\n")
    (profiles / f"{name}.toml").write_text(text)


def factory_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A device maker's CA (not Tetra's), written to factory-ca.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Factory CA"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    (directory / "factory-ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def device_certificate(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, serial_number: str, *, expired: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An IDevID: the factory's certificate for one device."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=30 if expired else 1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial_number)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


class EstServer(ServerProcess):
    def __init__(self, ca_dir: Path, log: Path) -> None:
        super().__init__(
            ca_dir / "tetra.toml",
            f"sqlite:///{ca_dir / 'tetra.db'}",
            log,
            {"TETRA_SERVER__PROTOCOLS": '["est"]'},
        )
        self.ca_dir = ca_dir
        self.root = ca_dir / "ca" / "root.pem"
        self.url = f"https://localhost:{self.https_port}/.well-known/est"
        self.plain_url = f"http://127.0.0.1:{self.http_port}/.well-known/est"
        self.factory: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None  # IDevID CA and key

    def counts(self) -> tuple[int, int, int]:
        """(certificates, enrollment requests, EST pending rows): "nothing issued or stored"."""
        with sqlite3.connect(self.ca_dir / "tetra.db") as db:
            certs, requests, pending = (
                int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
                for table in ("certificates", "enrollment_requests", "est_pending")
            )
        return certs, requests, pending

    def tls_context(self, tls_max: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.root))
        if tls_max is not None:
            ctx.maximum_version = tls_max
        return ctx


def prepare_est_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Add the test profiles, the factory CA (factory-ca.pem) and the [est] section to a CA
    directory made by `tetra init`; returns the factory CA and its key."""
    profiles = ca_dir / "profiles"
    _profile_from_device(profiles, "held", approval="manual")
    _profile_from_device(profiles, "keygen", keygen=True)
    _profile_from_device(profiles, "pop")
    _profile_from_device(profiles, "factory")
    factory = factory_ca(ca_dir)
    with (ca_dir / "tetra.toml").open("a") as config:
        config.write(EST_CONFIG)
    return factory


def est_server(ca_dir: Path, tmp_path: Path) -> Iterator[EstServer]:
    factory = prepare_est_ca(ca_dir)
    server = EstServer(ca_dir, tmp_path / "serve.log")
    server.factory = factory
    try:
        server.wait_ready()
        server.cli("est", "user", "add", USER, "--password", PASSWORD)
        yield server
    finally:
        server.stop()


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def curl(server: EstServer, tmp: Path, url: str, *args: str) -> Reply:
    """curl as RFC 7030's examples run it; status, headers and body of the reply."""
    head, body = tmp / "curl.head", tmp / "curl.body"
    subprocess.run(
        ["curl", "-sS", "--cacert", str(server.root), "-D", str(head), "-o", str(body), *args, url],
        check=True,
        timeout=60,
        capture_output=True,
    )
    lines = head.read_bytes().decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Reply(status, headers, body.read_bytes())


def openssl(*args: str, data: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed: {result.stderr.decode()}")
    return result.stdout


def openssl_csr(
    tmp: Path, name: str, *, subject: str = "", sans: str = "", key: Path | None = None
) -> tuple[Path, Path]:
    """`openssl req` a new P-256 key (or reuse ``key``) and CSR; returns (key, base64 CSR file)."""
    key_path = key or tmp / f"{name}.key"
    if key is None:
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key_path))
    der = tmp / f"{name}.csr.der"
    args = [
        "req",
        "-new",
        "-key",
        str(key_path),
        "-subj",
        subject or f"/CN={name}",
        "-outform",
        "DER",
        "-out",
        str(der),
    ]
    if sans:
        args += ["-addext", f"subjectAltName={sans}"]
    openssl(*args)
    b64 = tmp / f"{name}.b64"
    openssl("base64", "-in", str(der), "-out", str(b64))
    return key_path, b64


def enroll_args(b64: Path, *auth: str) -> list[str]:
    return [*auth, "--data-binary", f"@{b64}", "-H", "Content-Type: application/pkcs10"]


def certificates(reply: Reply) -> tuple[x509.Certificate, ...]:
    """The certificates of a certs-only reply (base64, with or without line breaks)."""
    return parse_certs_only(base64.b64decode(b"".join(reply.body.split())))


def write_pem(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def verify_chain(server: EstServer, tmp: Path, cert: x509.Certificate) -> None:
    """`openssl verify` against the root, the issuing CA as untrusted."""
    leaf = write_pem(tmp / "leaf.pem", cert)
    out = openssl(
        "verify", "-CAfile", str(server.root), "-untrusted", str(server.ca_dir / "ca" / "issuing-ca.pem"), str(leaf)
    )
    assert out.strip().endswith(b": OK"), out


def enroll_basic(server: EstServer, tmp: Path, name: str, label: str = "iot") -> tuple[x509.Certificate, Path, Path]:
    """A certificate for ``name`` through simpleenroll with Basic: (certificate, key file, PEM file)."""
    key, csr = openssl_csr(tmp, name, sans=f"DNS:{name}")
    reply = curl(server, tmp, f"{server.url}/{label}/simpleenroll", *enroll_args(csr, "-u", f"{USER}:{PASSWORD}"))
    assert reply.status == 200, reply.text
    (cert,) = certificates(reply)
    return cert, key, write_pem(tmp / f"{name}.pem", cert)


def curl_exit_code(server: EstServer, url: str, *args: str) -> int:
    """curl's exit status where the TLS handshake itself is expected to fail (35, or 52/56 when
    the TLS 1.3 alert arrives after curl considered the handshake done)."""
    return subprocess.run(
        ["curl", "-sS", "--cacert", str(server.root), "-o", "/dev/null", *args, url], capture_output=True, timeout=60
    ).returncode
