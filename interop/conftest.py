"""Shared fixtures: a loopback DNS server, a real `tetra serve` with ACME (certbot, lego), and one
with OCSP and CRL (openssl), each from a fresh `tetra init` on free loopback ports.
Under CI (env CI set) a missing tool fails instead of skipping."""

from __future__ import annotations

import json
import os
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.acme_helpers import Http01Responder, LoopbackDns
from interop.acme_server import TetraServer, start_tetra
from interop.scep_server import scep_tetra  # noqa: F401  (the SCEP fixture, for every interop module)
from tests.tetra_process import TetraProcess, free_port, init_ca

BIN = Path(sys.executable).parent


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def need(tool: str) -> str:
    """The path of a command-line tool; skip without it, except under CI where it is a failure."""
    local = BIN / tool
    found = str(local) if local.exists() else shutil.which(tool)
    if found is None:
        if in_ci():
            pytest.fail(f"{tool} is not installed; CI must run the interop tests (make debian-packages)")
        pytest.skip(f"{tool} is not installed")
    return found


def clients_dir() -> Path:
    """Where `make clients` builds libest's and sscep's clients (TETRA_CLIENTS_DIR)."""
    return Path(os.environ.get("TETRA_CLIENTS_DIR") or Path.home() / ".cache" / "tetra" / "clients")


def built_client(name: str) -> Path:
    """A client `make clients` built from source; skip without it, except under CI where it is a failure."""
    path = clients_dir() / "bin" / name
    if not path.exists():
        message = f"{path} is missing: `make clients` builds it (or set TETRA_CLIENTS_DIR)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


class RevocationServer(TetraProcess):
    """One `tetra serve`: HTTP for OCSP and CRLs (what certificates point to), plus the CLI."""

    def __init__(self, directory: Path, http_port: int, env: dict[str, str], log: Path) -> None:
        self.directory = directory
        self.http_port = http_port
        super().__init__(directory / "tetra.toml", env, log)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def root(self) -> Path:
        return self.directory / "ca" / "root.pem"

    @property
    def issuer(self) -> Path:
        return self.directory / "ca" / "issuing-ca.pem"

    def enroll(self, csr_pem: bytes, profile: str = "tls-server") -> bytes:
        """Issue through the server's management API (on its HTTP listener too), with the token
        `tetra init` wrote for its administrator, admin: PEM certificate and chain."""
        body = json.dumps({"csr": csr_pem.decode(), "profile": profile}).encode()
        token = (self.directory / "secrets" / "api-token").read_text().strip()
        request = urllib.request.Request(
            f"{self.base}/api/v1/enroll",
            data=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            issued: dict[str, str] = json.loads(resp.read())
        return (issued["certificate"] + issued["chain"]).encode()


@pytest.fixture
def dns_server(tmp_path: Path) -> Iterator[LoopbackDns]:
    server = LoopbackDns(txt_file=tmp_path / "txt.json").start()
    yield server
    server.stop()


@pytest.fixture
def tetra(tmp_path: Path, dns_server: LoopbackDns) -> Iterator[TetraServer]:
    server = start_tetra(tmp_path, dns_server, http01_port=free_port(), tls_port=free_port())
    yield server
    server.stop()


@pytest.fixture
def web_root(tetra: TetraServer, tmp_path: Path) -> Iterator[Path]:
    """A directory served on the validation authority's http-01 port: the web root that clients
    such as dehydrated and uacme write their challenge files into."""
    root = tmp_path / "web-root"
    root.mkdir()
    with Http01Responder(int(tetra.env["TETRA_ACME__VALIDATION__HTTP_PORT"]), directory=root):
        yield root


@pytest.fixture(scope="module")
def revocation_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevocationServer]:
    workdir = tmp_path_factory.mktemp("revocation")
    http_port, https_port = free_port(), free_port()
    directory = workdir / "tetra"
    init_ca(directory, http_port, https_port)
    env = {
        "TETRA_SERVER__PROTOCOLS": json.dumps(["ocsp", "crl"]),
        "TETRA_MANAGE__ALSO_ON": json.dumps(["http"]),
        "TETRA_CRL__BATCH_DELAY": "1s",
        "TETRA_CRL__PARTITIONS": "2",
        "TETRA_CRL__DELTA": "true",
    }
    server = RevocationServer(directory, http_port, env, workdir / "tetra.log")
    try:
        server.wait_ready(f"{server.base}/healthz", timeout=60)
        yield server
    finally:
        server.stop()
