"""A real `tetra serve` with EST on loopback, for EST client interop tests (libest's estclient).

    from interop.est_server import est_tetra  # the fixture; or start_est_tetra(workdir)

    def test_something(est_tetra: EstTetra) -> None:
        est_tetra.host, est_tetra.https_port        # estclient -s 127.0.0.1 -p PORT
        est_tetra.root                               # the trust anchor (estclient's EST_OPENSSL_CACERT)
        password = est_tetra.add_user("bob")         # `tetra est user add bob`: HTTP Basic
        cert, key = est_tetra.client_certificate("dev1.example.com")  # for TLS client auth

Labels (`/.well-known/est/<label>/...`; the estclient built here has no `--path-seg`, so its
tests serve one profile per server with TETRA_EST__DEFAULT_PROFILE):
``iot`` and no label -> profile device; ``pop`` (tls-unique linking required, TLS 1.2 only);
``keygen`` (serverkeygen allowed); ``held`` (manual approval: 202 until `tetra requests approve`);
``factory`` (IDevID bootstrap: certificates of ``factory`` below authorise simpleenroll).
The user ``alice`` / ``alice-password`` exists from the start.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from interop.acme_server import protocols
from tests.integration.est_support import PASSWORD, USER, openssl, prepare_est_ca
from tests.tetra_process import TetraProcess, free_port, init_ca


class EstTetra(TetraProcess):
    host = "127.0.0.1"

    def __init__(self, directory: Path, https_port: int, http_port: int, log: Path) -> None:
        self.directory = directory
        self.https_port = https_port
        self.http_port = http_port
        self.factory: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None
        env = {"TETRA_SERVER__PROTOCOLS": json.dumps(sorted({*protocols(), "est"}))}
        super().__init__(directory / "tetra.toml", env, log)

    @property
    def root(self) -> Path:
        return self.directory / "ca" / "root.pem"

    @property
    def issuing_ca(self) -> Path:
        return self.directory / "ca" / "issuing-ca.pem"

    def url(self, label: str = "") -> str:
        return f"https://{self.host}:{self.https_port}/.well-known/est" + (f"/{label}" if label else "")

    def add_user(self, name: str, *, label: str = "", password: str = "") -> str:
        """`tetra est user add NAME [--label L] [--password P]`; the password (generated if none)."""
        args = ["est", "user", "add", name, *(("--label", label) if label else ())]
        out = self.cli(*args, *(("--password", password) if password else ()))
        return password or out.split("password:")[1].split()[0]

    def client_certificate(self, name: str, profile: str = "device") -> tuple[Path, Path]:
        """A P-256 key and a Tetra certificate for ``name`` (`tetra issue`): PEM files (cert, key)."""
        key, csr, cert = (self.directory / f"{name}.{ext}" for ext in ("key", "csr", "pem"))
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
        openssl(
            "req",
            "-new",
            "-key",
            str(key),
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-out",
            str(csr),
        )
        self.cli("issue", "--csr", str(csr), "--profile", profile, "--out", str(cert))
        return cert, key

    def factory_device(self, serial_number: str) -> tuple[Path, Path]:
        """An IDevID from the factory CA the `factory` label trusts: PEM files (cert, key)."""
        from tests.integration.est_support import device_certificate, write_pem

        assert self.factory is not None
        cert, key = device_certificate(*self.factory, serial_number)
        key_file = self.directory / f"{serial_number}.key"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return write_pem(self.directory / f"{serial_number}.pem", cert), key_file


def start_est_tetra(workdir: Path) -> EstTetra:
    """A fresh `tetra init` in workdir/tetra with the EST test profiles, served on free ports."""
    https_port, http_port = free_port(), free_port()
    directory = workdir / "tetra"
    init_ca(directory, http_port, https_port)
    factory = prepare_est_ca(directory)
    server = EstTetra(directory, https_port, http_port, workdir / "tetra.log")
    server.factory = factory
    context = ssl.create_default_context(cafile=str(server.root))
    server.wait_ready(f"https://127.0.0.1:{https_port}/healthz", timeout=30, context=context)
    server.cli("est", "user", "add", USER, "--password", PASSWORD)
    return server


@pytest.fixture
def est_tetra(tmp_path: Path) -> Iterator[EstTetra]:
    server = start_est_tetra(tmp_path)
    try:
        yield server
    finally:
        server.stop()
