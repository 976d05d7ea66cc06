"""uacme (Debian package; a C ACME client on libcurl) against a real `tetra serve`: register, http-01
through its packaged web-root hook, renew (it asks our OCSP responder first), revoke by the account
and by the certificate's own key, dns-01 with a wildcard through a hook, EAB.

uacme has no option to trust another CA: libcurl reads the system bundle. Each run therefore
happens in a private mount namespace where our root is bind-mounted over that bundle, so the
machine's trust store is never touched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

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

DNS_HOOK = Path(__file__).with_name("dns_hook.py")
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PACKAGED_HOOK = Path("/usr/share/uacme/uacme.sh")  # http-01 into $UACME_CHALLENGE_PATH


class Uacme:
    """One uacme configuration directory (account key, certificates, their keys)."""

    def __init__(self, server: TetraServer, confdir: Path) -> None:
        self.server = server
        self.confdir = confdir

    def run(
        self, *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        command = [need("uacme"), "-v", "-c", str(self.confdir), "-a", self.server.acme_directory, *args]
        script = f'mount --bind "$1" {SYSTEM_BUNDLE} && shift && exec "$@"'
        result = subprocess.run(
            [need("unshare"), "--mount", "sh", "-c", script, "sh", str(self.server.root), *command],
            env={"PATH": "/usr/bin:/bin", **(env or {})},
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check:
            assert result.returncode == 0, f"uacme {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result

    def issued(self, name: str, work: Path) -> tuple[Path, Path, x509.Certificate]:
        """uacme writes leaf + chain in one file; openssl verify wants them apart."""
        certs = x509.load_pem_x509_certificates((self.confdir / name / "cert.pem").read_bytes())
        leaf, chain = work / f"{name}.leaf.pem", work / f"{name}.chain.pem"
        leaf.write_bytes(certs[0].public_bytes(Encoding.PEM))
        chain.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs[1:]))
        return leaf, chain, certs[0]


def test_uacme_http01_renew_revoke(tetra: TetraServer, tmp_path: Path, web_root: Path) -> None:
    client = Uacme(tetra, tmp_path / "uacme")
    client.run("-y", "new", "ops@example.com")
    names = ["uacme.example.com", "www.uacme.example.com"]
    hook_env = {"UACME_CHALLENGE_PATH": str(web_root)}
    client.run("-h", str(PACKAGED_HOOK), "issue", *names, env=hook_env)
    leaf, chain, first = client.issued(names[0], tmp_path)
    check_certificate(tetra, leaf, chain, names)

    client.run("-f", "-h", str(PACKAGED_HOOK), "issue", *names, env=hook_env)
    leaf, chain, renewed = client.issued(names[0], tmp_path)
    assert renewed.serial_number != first.serial_number
    check_certificate(tetra, leaf, chain, names)

    client.run("revoke", str(leaf))  # signed by the account
    assert status_of(tetra, renewed.serial_number) == "revoked"

    first_pem = tmp_path / "first.pem"
    first_pem.write_bytes(first.public_bytes(Encoding.PEM))
    # uacme keeps one key per name, so the first certificate's key is this same file.
    client.run("revoke", str(first_pem), str(client.confdir / "private" / names[0] / "key.pem"))
    assert status_of(tetra, first.serial_number) == "revoked"


def test_uacme_dns01_wildcard_through_hook(tetra: TetraServer, tmp_path: Path, dns_server: LoopbackDns) -> None:
    hook = tmp_path / "hook.sh"
    hook.write_text(
        "#!/bin/sh\n"
        '[ "$2" = dns-01 ] || exit 1  # decline other challenge types\n'
        'case "$1" in\n'
        f'  begin) exec {sys.executable} {DNS_HOOK} {dns_server.txt_file} present "_acme-challenge.$3" "$5" ;;\n'
        f'  done|failed) exec {sys.executable} {DNS_HOOK} {dns_server.txt_file} cleanup "_acme-challenge.$3" "$5" ;;\n'
        "esac\n"
        "exit 1\n"
    )
    hook.chmod(0o755)
    client = Uacme(tetra, tmp_path / "uacme")
    client.run("-y", "new")
    names = ["*.uacme-dns.example.com", "uacme-dns.example.com"]
    client.run("-h", str(hook), "issue", *names)
    leaf, chain, _ = client.issued("uacme-dns.example.com", tmp_path)  # its folder drops the "*."
    check_certificate(tetra, leaf, chain, names)


def test_uacme_with_external_account_binding(tmp_path: Path, dns_server: LoopbackDns) -> None:
    http01_port = free_port()
    server = start_tetra_requiring_eab(tmp_path, dns_server, http01_port=http01_port)
    web_root = tmp_path / "acme-challenge"
    web_root.mkdir()
    try:
        refused = Uacme(server, tmp_path / "without").run("-y", "new", check=False)
        assert refused.returncode != 0 and "external credentials" in refused.stderr  # it reads meta first
        kid, hmac_key = new_eab_key(server, "tls-server")
        client = Uacme(server, tmp_path / "uacme")
        client.run("-y", "-e", f"{kid}:{hmac_key}", "new")
        name = "eab.uacme.example.com"
        with Http01Responder(http01_port, directory=web_root):
            client.run("-h", str(PACKAGED_HOOK), "issue", name, env={"UACME_CHALLENGE_PATH": str(web_root)})
        leaf, chain, _ = client.issued(name, tmp_path)
        check_certificate(server, leaf, chain, [name])
    finally:
        server.stop()
