"""dehydrated (Debian package; a Bash ACME client on curl and openssl, the closest packaged kin of
acme.sh) against a real `tetra serve`: register (its account key is RSA: RS256), http-01 from a
web root, renew, revoke, dns-01 with a wildcard through its hook, EAB."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cryptography import x509

from interop.acme_helpers import Http01Responder, LoopbackDns
from interop.acme_server import (
    TetraServer,
    check_certificate,
    new_eab_key,
    start_tetra_requiring_eab,
    status_of,
)
from interop.conftest import need
from tests.tetra_process import free_port

HOOK = Path(__file__).with_name("dns_hook.py")


class Dehydrated:
    """One dehydrated state directory (account key, certificates) and its config file."""

    def __init__(
        self, server: TetraServer, work: Path, challenge: str, extra: str = "", wellknown: Path | None = None
    ) -> None:
        self.server = server
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.wellknown = wellknown or work / "wellknown"
        self.wellknown.mkdir(parents=True, exist_ok=True)
        self.config = work / "config"
        self.config.write_text(
            f'CA="{server.acme_directory}"\n'
            f'CHALLENGETYPE="{challenge}"\n'
            f'BASEDIR="{work}"\n'
            f'WELLKNOWN="{self.wellknown}"\n'
            'CONTACT_EMAIL="ops@example.com"\n'
            'KEY_ALGO="prime256v1"\n'
            'IP_VERSION="4"\n' + extra
        )

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CURL_CA_BUNDLE": str(self.server.root)}  # curl trusts our root only
        result = subprocess.run(
            [need("dehydrated"), "--config", str(self.config), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check:
            assert result.returncode == 0, f"dehydrated {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def issued(self, name: str) -> tuple[Path, Path, x509.Certificate]:
        folder = self.work / "certs" / name
        cert = folder / "cert.pem"
        return cert, folder / "chain.pem", x509.load_pem_x509_certificate(cert.read_bytes())


def test_dehydrated_http01_renew_revoke(tetra: TetraServer, tmp_path: Path, web_root: Path) -> None:
    client = Dehydrated(tetra, tmp_path / "dehydrated", "http-01", wellknown=web_root)
    client.run("--register", "--accept-terms")
    names = ["dehydrated.example.com", "www.dehydrated.example.com"]
    domains = [arg for name in names for arg in ("--domain", name)]
    client.run("--cron", *domains)
    cert, chain, first = client.issued(names[0])
    check_certificate(tetra, cert, chain, names)

    client.run("--cron", "--force", *domains)
    cert, chain, renewed = client.issued(names[0])
    assert renewed.serial_number != first.serial_number
    check_certificate(tetra, cert, chain, names)

    client.run("--revoke", str(cert))  # signed by the account that ordered it
    assert status_of(tetra, renewed.serial_number) == "revoked"


def test_dehydrated_dns01_wildcard_through_hook(tetra: TetraServer, tmp_path: Path, dns_server: LoopbackDns) -> None:
    hook = tmp_path / "hook.sh"
    hook.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        f'  deploy_challenge) exec {sys.executable} {HOOK} {dns_server.txt_file} present "_acme-challenge.$2" "$4" ;;\n'
        f'  clean_challenge) exec {sys.executable} {HOOK} {dns_server.txt_file} cleanup "_acme-challenge.$2" "$4" ;;\n'
        "esac\n"
        "exit 0\n"
    )
    hook.chmod(0o755)
    client = Dehydrated(tetra, tmp_path / "dehydrated", "dns-01", f'HOOK="{hook}"\n')
    client.run("--register", "--accept-terms")
    names = ["*.dehydrated-dns.example.com", "dehydrated-dns.example.com"]
    client.run("--cron", "--alias", "wild", *[arg for name in names for arg in ("--domain", name)])
    cert, chain, _ = client.issued("wild")
    check_certificate(tetra, cert, chain, names)


def test_dehydrated_with_external_account_binding(tmp_path: Path, dns_server: LoopbackDns) -> None:
    http01_port = free_port()
    server = start_tetra_requiring_eab(tmp_path, dns_server, http01_port=http01_port)
    try:
        refused = Dehydrated(server, tmp_path / "without", "http-01").run("--register", "--accept-terms", check=False)
        assert refused.returncode != 0 and "EAB" in refused.stdout + refused.stderr
        kid, hmac_key = new_eab_key(server, "tls-server")
        client = Dehydrated(server, tmp_path / "dehydrated", "http-01", f'EAB_KID="{kid}"\nEAB_HMAC_KEY="{hmac_key}"\n')
        with Http01Responder(http01_port, directory=client.wellknown):
            client.run("--register", "--accept-terms")
            client.run("--cron", "--domain", "eab.dehydrated.example.com")
        cert, chain, _ = client.issued("eab.dehydrated.example.com")
        check_certificate(server, cert, chain, ["eab.dehydrated.example.com"])
    finally:
        server.stop()
