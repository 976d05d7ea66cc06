"""Start a real `tetra serve` on loopback for interop tests: fresh CA, ACME on, validation on loopback."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from pathlib import Path

from interop.acme_helpers import LoopbackDns
from tests.tetra_process import TetraProcess, free_port, init_ca

BIN = Path(sys.executable).parent
INTERNAL_NAME_FINDINGS = {"cabf.internal_domain_name", "cabf.internal_ip_address"}


def tool(name: str) -> str:
    """A command from the venv (tetra, certbot) or the system (lego, openssl)."""
    local = BIN / name
    return str(local) if local.exists() else name


class TetraServer(TetraProcess):
    """`tetra serve` from a fresh `tetra init`, ACME on, validation pointed at loopback."""

    def __init__(self, directory: Path, https_port: int, env: dict[str, str], log: Path) -> None:
        self.directory = directory
        self.https_port = https_port
        super().__init__(directory / "tetra.toml", env, log)

    @property
    def acme_directory(self) -> str:
        return f"https://127.0.0.1:{self.https_port}/acme/directory"

    @property
    def root(self) -> Path:
        return self.directory / "ca" / "root.pem"

    def certificates(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = json.loads(self.cli("certs", "list", "--format", "json", "--protocol", "acme"))
        return rows


def protocols() -> list[str]:
    from protocols.registry import PROTOCOLS

    return [p for p in ("acme", "est", "ocsp", "crl") if p in PROTOCOLS]


def start_tetra(
    workdir: Path, dns_server: LoopbackDns, *, http01_port: int, tls_port: int, extra_env: dict[str, str] | None = None
) -> TetraServer:
    https_port, http_port = free_port(), free_port()
    directory = workdir / "tetra"
    init_ca(directory, http_port, https_port)
    env = {
        "TETRA_SERVER__PROTOCOLS": json.dumps(protocols()),
        "TETRA_ACME__VALIDATION__HTTP_PORT": str(http01_port),
        "TETRA_ACME__VALIDATION__TLS_PORT": str(tls_port),
        "TETRA_ACME__VALIDATION__RESOLVER": dns_server.address,
        **(extra_env or {}),
    }
    server = TetraServer(directory, https_port, env, workdir / "tetra.log")
    context = ssl.create_default_context(cafile=str(server.root))
    server.wait_ready(f"https://127.0.0.1:{https_port}/healthz", timeout=30, context=context)
    return server


def start_tetra_requiring_eab(workdir: Path, dns_server: LoopbackDns, *, http01_port: int | None = None) -> TetraServer:
    """A server whose ACME directory requires external account binding."""
    return start_tetra(
        workdir,
        dns_server,
        http01_port=http01_port or free_port(),
        tls_port=free_port(),
        extra_env={"TETRA_ACME__EXTERNAL_ACCOUNT_REQUIRED": "true"},
    )


def new_eab_key(server: TetraServer, profile: str | None = None) -> tuple[str, str]:
    """`tetra acme eab create [--profile P]`: (key id, base64url HMAC key) as the operator reads them."""
    out = server.cli("acme", "eab", "create", *(("--profile", profile) if profile else ()))
    return out.split("key id:")[1].split()[0], out.split("hmac key:")[1].split()[0]


def check_certificate(server: TetraServer, cert_pem: Path, chain_pem: Path, names: list[str]) -> None:
    """Chains to our root (openssl verify), names exactly the requested names, lints clean."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from ca.lint import format_findings, lint_certificate, reference_traversal

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
    with reference_traversal():  # pkilint's own traversal, not the gate's indexed one
        found = lint_certificate(leaf.public_bytes(Encoding.DER), profile="cabf-serverauth")
    findings = [f for f in found if f.code not in INTERNAL_NAME_FINDINGS]
    assert not findings, format_findings(findings)


def status_of(server: TetraServer, serial: int) -> str:
    for row in server.certificates():
        if int(str(row["serial"]), 16) == serial:
            return str(row["status"])
    raise AssertionError(f"serial {serial:x} not in the store")
