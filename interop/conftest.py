"""A real `tetra serve` with OCSP and CRL on free loopback ports, from a fresh `tetra init`,
for the openssl interop tests. Under CI (env CI set) a missing tool fails instead of skipping."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
API_TOKEN = "interop-api-token"


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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RevocationServer:
    """One `tetra serve`: HTTP for OCSP and CRLs (what certificates point to), plus the CLI."""

    directory: Path
    http_port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def config(self) -> Path:
        return self.directory / "tetra.toml"

    @property
    def root(self) -> Path:
        return self.directory / "ca" / "root.pem"

    @property
    def issuer(self) -> Path:
        return self.directory / "ca" / "issuing-ca.pem"

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [need("tetra"), *args, "--config", str(self.config)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if result.returncode != 0:
            raise AssertionError(f"tetra {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def enroll(self, csr_pem: bytes, profile: str = "tls-server") -> bytes:
        """Issue through the server's operator API: PEM certificate and chain."""
        body = json.dumps({"csr": csr_pem.decode(), "profile": profile}).encode()
        request = urllib.request.Request(
            f"{self.base}/api/v1/enroll",
            data=body,
            headers={"Authorization": f"Bearer {API_TOKEN}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            issued = json.loads(resp.read())
        return (issued["certificate"] + issued["chain"]).encode()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def revocation_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RevocationServer]:
    tetra = need("tetra")
    workdir = tmp_path_factory.mktemp("revocation")
    http_port, https_port = _free_port(), _free_port()
    directory = workdir / "tetra"
    subprocess.run(
        [
            tetra,
            "init",
            "--dir",
            str(directory),
            "--http",
            f"127.0.0.1:{http_port}",
            "--https",
            f"127.0.0.1:{https_port}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = {
        **os.environ,
        "TETRA_SERVER__PROTOCOLS": json.dumps(["api", "ocsp", "crl"]),
        "TETRA_CRL__BATCH_DELAY": "1s",
        "TETRA_CRL__PARTITIONS": "2",
        "TETRA_CRL__DELTA": "true",
        "TETRA_API_TOKEN": API_TOKEN,
    }
    server = RevocationServer(directory, http_port, env, log=workdir / "tetra.log")
    with server.log.open("wb") as out:
        server.proc = subprocess.Popen(
            [tetra, "serve", "--config", str(server.config)], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 60
    try:
        while True:
            if server.proc.poll() is not None:
                raise AssertionError(f"tetra serve exited: {server.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{server.base}/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("tetra serve did not become healthy in 60 s") from None
                time.sleep(0.2)
        yield server
    finally:
        server.stop()
