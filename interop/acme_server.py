"""Start a real `tetra serve` on loopback for interop tests: fresh CA, ACME on, validation on loopback."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from interop.acme_helpers import LoopbackDns, free_port

BIN = Path(sys.executable).parent
INTERNAL_NAME_FINDINGS = {"cabf.internal_domain_name", "cabf.internal_ip_address"}


def tool(name: str) -> str:
    """A command from the venv (tetra, certbot) or the system (lego, openssl)."""
    local = BIN / name
    return str(local) if local.exists() else name


@dataclass
class TetraServer:
    directory: Path
    https_port: int
    http_port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    @property
    def acme_directory(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/acme/directory"

    @property
    def root(self) -> Path:
        return self.directory / "ca" / "root.pem"

    @property
    def config(self) -> Path:
        return self.directory / "tetra.toml"

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [tool("tetra"), *args, "--config", str(self.config)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"tetra {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def certificates(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = json.loads(self.cli("certs", "list", "--format", "json", "--protocol", "acme"))
        return rows

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def protocols() -> list[str]:
    from protocols.registry import PROTOCOLS

    return [p for p in ("api", "acme", "ocsp", "crl") if p in PROTOCOLS]


def start_tetra(
    workdir: Path, dns_server: LoopbackDns, *, http01_port: int, tls_port: int, extra_env: dict[str, str] | None = None
) -> TetraServer:
    https_port, http_port = free_port(), free_port()
    directory = workdir / "tetra"
    subprocess.run(
        [
            tool("tetra"),
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
        "TETRA_SERVER__PROTOCOLS": json.dumps(protocols()),
        "TETRA_ACME__VALIDATION__HTTP_PORT": str(http01_port),
        "TETRA_ACME__VALIDATION__TLS_PORT": str(tls_port),
        "TETRA_ACME__VALIDATION__RESOLVER": dns_server.address,
        **(extra_env or {}),
    }
    server = TetraServer(directory, https_port, http_port, env, log=workdir / "tetra.log")
    out = server.log.open("wb")
    server.proc = subprocess.Popen(
        [tool("tetra"), "serve", "--config", str(server.config)], env=env, stdout=out, stderr=subprocess.STDOUT
    )
    context = ssl.create_default_context(cafile=str(server.root))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"tetra serve exited: {server.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{https_port}/healthz", context=context, timeout=2):
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise AssertionError("tetra serve did not become healthy in 30 s")


def check_certificate(server: TetraServer, cert_pem: Path, chain_pem: Path, names: list[str]) -> None:
    """Chains to our root (openssl verify), names exactly the requested names, lints clean."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from ca.lint import format_findings, lint_certificate

    result = subprocess.run(
        [tool("openssl"), "verify", "-CAfile", str(server.root), "-untrusted", str(chain_pem), str(cert_pem)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    leaf = x509.load_pem_x509_certificates(cert_pem.read_bytes())[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(names)
    # The CA/B Forum profile, as the tls-server profile lints before signing; a loopback demo CA's
    # URLs and names are internal, which `tetra init` accepts for exactly these two findings.
    findings = [
        f
        for f in lint_certificate(leaf.public_bytes(Encoding.DER), profile="cabf-serverauth")
        if f.code not in INTERNAL_NAME_FINDINGS
    ]
    assert not findings, format_findings(findings)


def status_of(server: TetraServer, serial: int) -> str:
    for row in server.certificates():
        if int(str(row["serial"]), 16) == serial:
            return str(row["status"])
    raise AssertionError(f"serial {serial:x} not in the store")
