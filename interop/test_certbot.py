"""certbot (PyPI) against a real `tetra serve`: register with and without EAB, http-01 standalone,
dns-01 through a manual hook into the loopback DNS server, renew, revoke (ACME-27)."""

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


def run_certbot(server: TetraServer, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """certbot against our directory, trusting our root, with its state under `work`."""
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(server.root)}
    cmd = [
        tool("certbot"),
        *args,
        "--server",
        server.acme_directory,
        "--non-interactive",
        "--config-dir",
        str(work / "conf"),
        "--work-dir",
        str(work / "work"),
        "--logs-dir",
        str(work / "logs"),
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)


def certbot(server: TetraServer, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_certbot(server, work, *args)
    assert result.returncode == 0, f"certbot {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def live(work: Path, name: str) -> tuple[Path, Path, x509.Certificate]:
    base = work / "conf" / "live" / name
    return base / "cert.pem", base / "chain.pem", x509.load_pem_x509_certificate((base / "cert.pem").read_bytes())


def test_certbot_standalone_http01_renew_revoke(tetra: TetraServer, tmp_path: Path) -> None:
    work = tmp_path / "certbot"
    port = tetra.env["TETRA_ACME__VALIDATION__HTTP_PORT"]
    certbot(tetra, work, "register", "--agree-tos", "-m", "ops@example.com")
    names = ["www.certbot.example.com", "certbot.example.com"]
    certbot(
        tetra,
        work,
        "certonly",
        "--standalone",
        "--http-01-address",
        "127.0.0.1",
        "--http-01-port",
        port,
        *[a for n in names for a in ("-d", n)],
        "--cert-name",
        "web",
    )
    cert_path, chain_path, first = live(work, "web")
    check_certificate(tetra, cert_path, chain_path, names)
    assert status_of(tetra, first.serial_number) == "valid"

    certbot(tetra, work, "renew", "--force-renewal", "--no-random-sleep-on-renew")
    cert_path, chain_path, renewed = live(work, "web")
    assert renewed.serial_number != first.serial_number
    check_certificate(tetra, cert_path, chain_path, names)

    certbot(tetra, work, "revoke", "--cert-name", "web", "--reason", "keycompromise", "--no-delete-after-revoke")
    assert status_of(tetra, renewed.serial_number) == "revoked"


def test_certbot_dns01_manual_hook_wildcard(tetra: TetraServer, tmp_path: Path, dns_server: LoopbackDns) -> None:
    work = tmp_path / "certbot"
    assert dns_server.txt_file is not None
    hook = f"{sys.executable} {HOOK} {dns_server.txt_file}"
    names = ["*.dns.example.com", "dns.example.com"]
    certbot(
        tetra,
        work,
        "certonly",
        "--manual",
        "--preferred-challenges",
        "dns",
        "--agree-tos",
        "--register-unsafely-without-email",
        "--manual-auth-hook",
        f"{hook} add",
        "--manual-cleanup-hook",
        f"{hook} del",
        *[a for n in names for a in ("-d", n)],
        "--cert-name",
        "dns",
    )
    cert_path, chain_path, _ = live(work, "dns")
    check_certificate(tetra, cert_path, chain_path, names)
    assert any(q == ("_acme-challenge.dns.example.com", "TXT") for q in dns_server.queries)


def test_certbot_with_external_account_binding(tmp_path: Path, dns_server: LoopbackDns) -> None:
    server = start_tetra_requiring_eab(tmp_path, dns_server)
    try:
        work = tmp_path / "certbot"
        refused = run_certbot(server, work, "register", "--agree-tos", "-m", "a@example.com")
        assert refused.returncode != 0 and "external" in (refused.stdout + refused.stderr).lower()
        kid, hmac_key = new_eab_key(server)
        certbot(
            server, work, "register", "--agree-tos", "-m", "a@example.com", "--eab-kid", kid, "--eab-hmac-key", hmac_key
        )
        port = server.env["TETRA_ACME__VALIDATION__HTTP_PORT"]
        certbot(
            server,
            work,
            "certonly",
            "--standalone",
            "--http-01-address",
            "127.0.0.1",
            "--http-01-port",
            port,
            "-d",
            "eab.example.com",
        )
        cert_path, chain_path, _ = live(work, "eab.example.com")
        check_certificate(server, cert_path, chain_path, ["eab.example.com"])
    finally:
        server.stop()
