"""Fixtures for bench_est.py: the two EST servers (Tetra's `tetra serve` and libest's example
`estserver` with its OpenSSL CA), their TLS client identities, and the raw simpleenroll
requests both are sent. Nothing here is timed.

libest's estserver is Cisco's example server (the one its estclient is tested against). It
signs in C with OpenSSL's `ca` code, under one lock, re-reading its CA database for every
certificate; it serves 5 connections at a time (NUM_WORKER_THREADS in its simple_server.c),
and a keep-alive connection holds its thread until the client closes it. Its CA here has the
issuer key type Tetra's demo has (P-256, SHA-256) and adds the extensions Tetra's bench
profile adds (basic constraints, key usage, EKU, SAN copied from the CSR, policy, SKI, AKI,
CRL distribution point, AIA), so both sign certificates of the same shape.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import time
from pathlib import Path

import core_setup
from bench_acme import stop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from tests.tetra_process import free_port, tetra_command

EST_PREFIX = "/.well-known/est"
LIBEST_USER, LIBEST_PASSWORD = "estuser", "estpwd"  # compiled into estserver.c
TETRA_USER = "bench"
CLIENT_LABEL = "client"  # Tetra's EST label for the tls-client profile (the mTLS identity)

# The name of the load generator's TLS client certificate: a certificate vouches for its own
# names only, so the client-certificate rows ask for this name, each time with a new key.
CLIENT_NAME = "client.bench.example.com"


def clients_dir() -> Path:
    """Where `make clients` put estclient and estserver (the same variable the interop tests read)."""
    return Path(os.environ.get("TETRA_CLIENTS_DIR") or Path.home() / ".cache" / "tetra" / "clients")


def est_body(der: bytes) -> bytes:
    """A PKCS#10 as RFC 7030 §4.2.1 sends it: base64 with line breaks."""
    return base64.encodebytes(der)


def simpleenroll_request(path: str, csr_der: bytes, basic: tuple[str, str] | None = None) -> bytes:
    """One raw HTTP/1.1 simpleenroll request (keep-alive is HTTP/1.1's default)."""
    body = est_body(csr_der)
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/pkcs10\r\n"
    if basic is not None:
        head += f"Authorization: Basic {base64.b64encode(':'.join(basic).encode()).decode()}\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def enroll_identity(
    port: int, path: str, cafile: Path, basic: tuple[str, str], name: str, out: Path
) -> tuple[Path, Path]:
    """A TLS client identity enrolled over EST with Basic auth: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    context = ssl.create_default_context(cafile=str(cafile))
    context.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    auth = base64.b64encode(":".join(basic).encode()).decode()
    conn.request(
        "POST",
        path,
        est_body(csr.public_bytes(serialization.Encoding.DER)),
        {"Content-Type": "application/pkcs10", "Authorization": f"Basic {auth}"},
    )
    reply = conn.getresponse()
    body = reply.read()
    conn.close()
    if reply.status != 200:
        raise SystemExit(f"enrolling the client identity at {path}: HTTP {reply.status} {body[:300]!r}")
    cert = pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))[0]
    cert_path, key_path = out / f"{name}.pem", out / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def wait_tls(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    """Until a TLS handshake on `port` completes; fails at once, with the log, if the server exits."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as raw:
                with context.wrap_socket(raw):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no TLS on port {port} after {timeout:.0f} s: {log.read_text(errors='replace')[-2000:]}")


# -- libest's estserver -----------------------------------------------------------------------

CA_CONFIG = """\
[ ca ]
default_ca = CA_default

[ CA_default ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/cacert.crt
serial = $dir/serial
private_key = $dir/private/cakey.pem
default_days = 90
default_md = sha256
policy = policy_any
email_in_dn = no
copy_extensions = copy
x509_extensions = leaf
unique_subject = no

[ policy_any ]
commonName = supplied

[ leaf ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
certificatePolicies = 2.23.140.1.2.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
crlDistributionPoints = URI:http://pki.example.com/crl/bench.crl
authorityInfoAccess = OCSP;URI:http://pki.example.com/ocsp, caIssuers;URI:http://pki.example.com/ca.crt
"""


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"openssl {' '.join(args[:2])} failed: {done.stderr[-1000:]}")


class LibestServer:
    """libest's `estserver` on a free port with a fresh OpenSSL CA; Basic (estuser/estpwd) and
    client certificates from its CA both accepted (-b -o: no HTTP auth after TLS client auth)."""

    label = "libest estserver"

    def __init__(self, work: Path) -> None:
        self.work = work
        ca = work / "estCA"
        (ca / "private").mkdir(parents=True, exist_ok=True)
        (ca / "newcerts").mkdir(exist_ok=True)
        (ca / "serial").write_text("01\n")
        (ca / "index.txt").write_text("")
        (ca / "index.txt.attr").write_text("unique_subject = no\n")
        self.cafile = ca / "cacert.crt"
        p256 = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        ca_ext = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
        _openssl("req", "-x509", *p256, "-keyout", str(ca / "private" / "cakey.pem"), "-out", str(self.cafile),
                 "-days", "30", "-subj", "/CN=libest bench CA", *ca_ext)  # fmt: skip
        self.config = work / "ca.cnf"
        self.config.write_text(CA_CONFIG.format(dir=ca))
        self.server_key, self.server_cert = work / "server.key", work / "server.pem"
        _openssl("req", "-new", *p256, "-keyout", str(self.server_key), "-out", str(work / "server.csr"),
                 "-subj", "/CN=localhost")  # fmt: skip
        ext = work / "server-ext.cnf"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", str(work / "server.csr"), "-CA", str(self.cafile),
                 "-CAkey", str(ca / "private" / "cakey.pem"), "-days", "30", "-out", str(self.server_cert),
                 "-extfile", str(ext))  # fmt: skip
        self.basic = (LIBEST_USER, LIBEST_PASSWORD)
        self.enroll_path = f"{EST_PREFIX}/simpleenroll"
        self.identity: tuple[Path, Path] | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.port = free_port()
        self.log = self.work / "estserver.log"
        env = {
            **os.environ,
            "EST_TRUSTED_CERTS": str(self.cafile),
            "EST_CACERTS_RESP": str(self.cafile),
            "EST_OPENSSL_CACONFIG": str(self.config),
        }
        command = [str(clients_dir() / "bin" / "estserver"), "-c", str(self.server_cert), "-k", str(self.server_key)]
        command += ["-r", "estrealm", "-p", str(self.port), "-b", "-o"]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        wait_tls(self.port, self.proc, self.log)
        if self.identity is None:
            self.identity = enroll_identity(
                self.port, self.enroll_path, self.cafile, self.basic, CLIENT_NAME, self.work
            )

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


# -- Tetra ------------------------------------------------------------------------------------


class TetraServer:
    """`tetra serve` with EST only, from a CA directory made by bench_core's own setup (software
    P-256 issuer, profile bench-tls: tls-server without the pkilint gate), a fresh SQLite or
    PostgreSQL database per start, one Basic user, and a client identity enrolled over EST
    under the tls-client profile (a TLS client certificate needs clientAuth)."""

    label = "Tetra"

    def __init__(self, ca_dir: Path, work: Path, database: str, db_mode: str, profile: str) -> None:
        self.ca_dir, self.work, self.database, self.db_mode = ca_dir, work, database, db_mode
        self.cafile = ca_dir / "ca" / "root.pem"
        with (ca_dir / "tetra.toml").open("a") as config:
            config.write(f'\n[est]\ndefault_profile = "{profile}"\n\n[est.labels]\n{CLIENT_LABEL} = "tls-client"\n')
        self.enroll_path = f"{EST_PREFIX}/simpleenroll"
        self.password = "bench-" + base64.urlsafe_b64encode(os.urandom(12)).decode()
        self.basic = (TETRA_USER, self.password)
        self.identity: tuple[Path, Path] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.fresh: core_setup.FreshDatabase | None = None
        self.starts = 0

    def _tetra(self, *args: str, env: dict[str, str]) -> None:
        done = subprocess.run(
            [*tetra_command(), *args, "--config", str(self.ca_dir / "tetra.toml")],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"tetra {' '.join(args[:3])} failed: {done.stderr[-1000:]}")

    def start(self) -> None:
        self.starts += 1
        self.fresh = fresh = core_setup.fresh_database(self.database, self.work / "db", f"est-{self.starts}")
        self.port = free_port()
        self.log = self.work / "tetra.log"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
            ),
            "TETRA_DATABASE__URL": json.dumps(fresh.url),
            "TETRA_DATABASE__MODE": self.db_mode,
            "TETRA_SERVER__HTTP": f"127.0.0.1:{free_port()}",
            "TETRA_SERVER__HTTPS": f"127.0.0.1:{self.port}",
            "TETRA_SERVER__PROTOCOLS": '["est"]',
            "TETRA_LOGGING__LEVEL": "warning",
            # Every load client connects from 127.0.0.1, with more connections than a real client
            # address should hold ([server] max_connections_per_address, 64 by default).
            "TETRA_SERVER__MAX_CONNECTIONS_PER_ADDRESS": "1000000",
        }
        self._tetra("est", "user", "add", TETRA_USER, "--password", self.password, env=env)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*tetra_command(), "serve", "--config", str(self.ca_dir / "tetra.toml")],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_tls(self.port, self.proc, self.log)
        # Each start has a fresh database, so the identity (checked against the store) is enrolled again.
        self.identity = enroll_identity(
            self.port,
            f"{EST_PREFIX}/{CLIENT_LABEL}/simpleenroll",
            self.cafile,
            self.basic,
            CLIENT_NAME,
            self.work,
        )

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
        if self.fresh is not None:
            self.fresh.drop()
            self.fresh = None
