"""golang.org/x/crypto/acme (Debian's golang-golang-x-crypto-dev), the library cert-manager's ACME
issuer is forked from, driven through cert-manager's flow by `go_acme_client/main.go`: RSA account
and certificate keys, EAB with HS256, an order with notAfter, http-01, revocation."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from interop.acme_helpers import LoopbackDns
from interop.acme_server import (
    TetraServer,
    check_certificate,
    new_eab_key,
    start_tetra_requiring_eab,
    status_of,
)
from interop.conftest import in_ci, need

SOURCE = Path(__file__).with_name("go_acme_client")
GOPATH = "/usr/share/gocode"  # where Debian's golang-*-dev packages put their sources


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (Path(GOPATH) / "src/golang.org/x/crypto/acme").is_dir():
        missing = "golang.org/x/crypto/acme is not installed (Debian golang-golang-x-crypto-dev)"
        if in_ci():
            pytest.fail(missing)
        pytest.skip(missing)
    build = tmp_path_factory.mktemp("go")
    binary = build / "go_acme_client"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOCACHE": str(build / "cache"), "GOFLAGS": ""}
    result = subprocess.run(
        [need("go"), "build", "-o", str(binary), "."], cwd=SOURCE, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return binary


def issue(binary: Path, server: TetraServer, out: Path, names: list[str], *args: str) -> x509.Certificate:
    solver = f"127.0.0.1:{server.env['TETRA_ACME__VALIDATION__HTTP_PORT']}"
    command = [str(binary), "-directory", server.acme_directory, "-ca", str(server.root), "-http01", solver]
    result = subprocess.run(
        [*command, "-names", ",".join(names), "-out", str(out), *args], capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stdout + result.stderr
    certs = x509.load_pem_x509_certificates(out.read_bytes())
    leaf, chain = out.with_suffix(".leaf.pem"), out.with_suffix(".chain.pem")
    leaf.write_bytes(certs[0].public_bytes(Encoding.PEM))
    chain.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs[1:]))
    check_certificate(server, leaf, chain, names)
    return certs[0]


def test_go_acme_not_after_http01_revoke(go_client: Path, tetra: TetraServer, tmp_path: Path) -> None:
    names = ["go.example.com", "www.go.example.com"]
    asked = dt.datetime.now(dt.UTC) + dt.timedelta(hours=720)
    leaf = issue(go_client, tetra, tmp_path / "chain.pem", names, "-not-after", "720h", "-revoke")
    assert isinstance(leaf.public_key(), rsa.RSAPublicKey)
    assert abs(leaf.not_valid_after_utc - asked) < dt.timedelta(seconds=30)  # the order's notAfter, honoured
    assert status_of(tetra, leaf.serial_number) == "revoked"


def test_go_acme_with_external_account_binding(go_client: Path, tmp_path: Path, dns_server: LoopbackDns) -> None:
    server = start_tetra_requiring_eab(tmp_path, dns_server)
    try:
        refused = subprocess.run(
            [str(go_client), "-directory", server.acme_directory, "-ca", str(server.root), "-names", "x.example.com"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode != 0 and "externalAccountRequired" in refused.stderr
        kid, hmac_key = new_eab_key(server, "tls-server")
        issue(go_client, server, tmp_path / "chain.pem", ["eab.go.example.com"], "-eab-kid", kid, "-eab-key", hmac_key)
    finally:
        server.stop()
