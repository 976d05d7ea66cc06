"""lego (Debian package) against a real `tetra serve`: http-01, tls-alpn-01, dns-01 through the exec
provider into the loopback DNS server, EAB, renew, revoke (ACME-27)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from interop.acme_helpers import LoopbackDns
from interop.acme_server import (
    TetraServer,
    check_certificate,
    new_eab_key,
    start_tetra_requiring_eab,
    status_of,
    tool,
)

HOOK = Path(__file__).with_name("dns_hook.py")


def lego(server: TetraServer, work: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "LEGO_CA_CERTIFICATES": str(server.root), **(env or {})}
    cmd = [
        tool("lego"),
        "--server",
        server.acme_directory,
        "--accept-tos",
        "--email",
        "ops@example.com",
        "--path",
        str(work),
        *args,
    ]
    result = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"lego {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def split_bundle(work: Path, name: str) -> tuple[Path, Path, x509.Certificate]:
    """lego writes leaf + chain in one file; openssl verify wants them apart."""
    certs = x509.load_pem_x509_certificates((work / "certificates" / f"{name}.crt").read_bytes())
    from cryptography.hazmat.primitives.serialization import Encoding

    leaf_path, chain_path = work / f"{name}.leaf.pem", work / f"{name}.chain.pem"
    leaf_path.write_bytes(certs[0].public_bytes(Encoding.PEM))
    chain_path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs[1:]))
    return leaf_path, chain_path, certs[0]


def test_lego_http01_renew_revoke(tetra: TetraServer, tmp_path: Path) -> None:
    work = tmp_path / "lego"
    port = tetra.env["TETRA_ACME__VALIDATION__HTTP_PORT"]
    args = [
        "--domains",
        "lego.example.com",
        "--domains",
        "www.lego.example.com",
        "--http",
        "--http.port",
        f"127.0.0.1:{port}",
    ]
    lego(tetra, work, *args, "run")
    leaf_path, chain_path, first = split_bundle(work, "lego.example.com")
    check_certificate(tetra, leaf_path, chain_path, ["lego.example.com", "www.lego.example.com"])
    lego(tetra, work, *args, "renew", "--days", "400", "--no-random-sleep")
    leaf_path, chain_path, renewed = split_bundle(work, "lego.example.com")
    assert renewed.serial_number != first.serial_number
    check_certificate(tetra, leaf_path, chain_path, ["lego.example.com", "www.lego.example.com"])
    lego(tetra, work, "--domains", "lego.example.com", "revoke", "--reason", "4")
    assert status_of(tetra, renewed.serial_number) == "revoked"


def test_lego_tls_alpn01(tetra: TetraServer, tmp_path: Path) -> None:
    work = tmp_path / "lego"
    port = tetra.env["TETRA_ACME__VALIDATION__TLS_PORT"]
    lego(tetra, work, "--domains", "alpn.example.com", "--tls", "--tls.port", f"127.0.0.1:{port}", "run")
    leaf_path, chain_path, _ = split_bundle(work, "alpn.example.com")
    check_certificate(tetra, leaf_path, chain_path, ["alpn.example.com"])


def test_lego_dns01_exec_provider(tetra: TetraServer, tmp_path: Path, dns_server: LoopbackDns) -> None:
    work = tmp_path / "lego"
    script = tmp_path / "exec-hook.sh"
    script.write_text(f'#!/bin/sh\nexec {sys.executable} {HOOK} {dns_server.txt_file} "$@"\n')
    script.chmod(0o755)
    # The wildcard and the apex share one TXT name, so lego solves them one after the other,
    # waiting EXEC_SEQUENCE_INTERVAL (60 s by default) between: loopback DNS needs no wait.
    env = {
        "EXEC_PATH": str(script),
        "EXEC_PROPAGATION_TIMEOUT": "30",
        "EXEC_POLLING_INTERVAL": "1",
        "EXEC_SEQUENCE_INTERVAL": "1",
    }
    lego(
        tetra,
        work,
        "--domains",
        "*.lego-dns.example.com",
        "--domains",
        "lego-dns.example.com",
        "--dns",
        "exec",
        "--dns.resolvers",
        dns_server.address,
        "--dns.disable-cp",
        "run",
        env=env,
    )
    leaf_path, chain_path, _ = split_bundle(work, "_.lego-dns.example.com")
    check_certificate(tetra, leaf_path, chain_path, ["*.lego-dns.example.com", "lego-dns.example.com"])


def test_lego_with_external_account_binding(tmp_path: Path, dns_server: LoopbackDns) -> None:
    server = start_tetra_requiring_eab(tmp_path, dns_server)
    try:
        kid, hmac_key = new_eab_key(server, "tls-server")
        work = tmp_path / "lego"
        port = server.env["TETRA_ACME__VALIDATION__HTTP_PORT"]
        lego(
            server,
            work,
            "--eab",
            "--kid",
            kid,
            "--hmac",
            hmac_key,
            "--domains",
            "eab-lego.example.com",
            "--http",
            "--http.port",
            f"127.0.0.1:{port}",
            "run",
        )
        leaf_path, chain_path, _ = split_bundle(work, "eab-lego.example.com")
        check_certificate(server, leaf_path, chain_path, ["eab-lego.example.com"])
    finally:
        server.stop()
