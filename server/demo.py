"""`tetra init`: a working demo hierarchy in one directory (root, issuing CA, TLS, RA, SQLite, config)."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ca.enrollment import AuthMethod, EnrollmentRequest, Identifier, Requester
from ca.errors import ConfigError
from ca.hierarchy import CAProfile, create_intermediate, create_root, fingerprint_sha256
from ca.issuer import Intent
from ca.keys import generate_private_key
from ca.operators.roles import Role
from ca.profiles.builtin import ra_profile, service_tls_profile
from ca.profiles.policy import build_template
from ca.service import CertificateAuthority
from ca.signers.software import save_encrypted_key
from ca.store.migrate import upgrade
from server.config import Listen
from server.shipped_files import shipped
from server.wiring import build_ca, read_config

ADMIN_USER = "admin"  # the first user `tetra init` creates


@dataclass(frozen=True)
class InitResult:
    config: Path
    root_fingerprint: str


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def render_config(http: Listen, https: Listen, protocols: list[str], http_url: str = "") -> str:
    proto_list = ", ".join(f'"{p}"' for p in protocols)
    url_line = f'http_url = "{http_url}"\n' if http_url else ""
    acme_block = (
        "\n# A demo on one machine: validate http-01 and tls-alpn-01 on unprivileged loopback ports\n"
        "# (certbot --http-01-port 5002, lego --http.port :5002 --tls.port :5001), and take every\n"
        "# name under example.test to be 127.0.0.1 (no DNS needed). Remove demo_loopback_domains\n"
        "# before this CA validates real names.\n"
        '[acme.validation]\nhttp_port = 5002\ntls_port = 5001\ndemo_loopback_domains = ["example.test"]\n'
        if "acme" in protocols
        else ""
    )
    scep_block = (
        "\n# SCEP at <http_url>/scep (and /cgi-bin/pkiclient.exe, /certsrv/mscep/mscep.dll) enrols\n"
        '# profile "device" with the static challenge in secrets/scep-challenge; docs/scep.md.\n'
        '[scep]\ndefault_profile = "device"\n\n'
        '[scep.profiles.device]\nchallenge_file = "secrets/scep-challenge"\n'
        if "scep" in protocols
        else ""
    )
    cmp_block = (
        '\n# CMP at <http_url>/.well-known/cmp enrols profile "device": add a shared secret with\n'
        "# `tetra cmp secret add REF`, or sign with a certificate this CA issued; docs/cmp.md.\n"
        '[cmp]\ndefault_profile = "device"\n'
        if "cmp" in protocols
        else ""
    )
    return f"""# Tetra demo configuration written by `tetra init`. Every key is explained in
# conf/tetra.example.toml; any key can be overridden by TETRA_<SECTION>__<KEY>.

[server]
http = "{http}"
https = "{https}"
tls_certificate = "tls/server.pem"
tls_key = "tls/server.key"
client_certificates = "optional"
protocols = [{proto_list}]
{url_line}
[logging]
format = "text"
level = "info"

[database]
url = "sqlite:///tetra.db"
mode = "auto"

[profiles]
directory = "profiles"
default = "tls-server"

[ca]
roots = ["ca/root.pem"]
intermediates = []
default_issuer = "issuing-ca"

# The root key is kept here for the demo only; in production keep it offline
# and pass it to `tetra ca init-intermediate` when needed.
[signers.issuing-ca]
backend = "software"
key_file = "keys/issuing-ca.key"
passphrase_file = "secrets/passphrase"

[signers.ra]
backend = "software"
key_file = "keys/ra.key"
passphrase_file = "secrets/passphrase"

[issuers.issuing-ca]
certificate = "ca/issuing-ca.pem"
signer = "issuing-ca"

[ra.scep]
certificate = "ra/ra.pem"
signer = "ra"

# The OCSP responder's key lives in a file, so a restart reuses its certificate instead of
# issuing another (the default, "ephemeral", makes a key in memory at every start).
[ocsp.responder_key]
source = "file"
file = "keys/ocsp-responder.key"
passphrase_file = "secrets/passphrase"

# The management plane (REST API at /api/v1, dashboard at /ui/) on its own listener, loopback
# only; docs/api.md. `tetra token create NAME` makes a user's bearer token.
[manage]
listen = "127.0.0.1:8444"
{acme_block}{scep_block}{cmp_block}"""


async def init_demo(
    directory: Path,
    *,
    http: Listen,
    https: Listen,
    hostnames: list[str],
    protocols: list[str],
    http_url: str = "",
    database_url: str = "",
) -> InitResult:
    """http_url: the public base URL written into certificates (default: the HTTP listener)."""
    if (directory / "tetra.toml").exists():
        raise ConfigError(f"{directory}/tetra.toml already exists: this directory already holds a CA")
    profiles = shipped("profiles")  # before writing anything: an install without them fails cleanly
    directory.mkdir(parents=True, exist_ok=True)
    passphrase = secrets.token_urlsafe(32).encode()
    _write(directory / "secrets" / "passphrase", passphrase + b"\n", 0o600)
    _write(directory / "secrets" / "scep-challenge", secrets.token_urlsafe(18).encode() + b"\n", 0o600)

    now = dt.datetime.now(dt.UTC)
    root_key = generate_private_key("ec-p256")
    root = create_root(CAProfile("Tetra Demo Root CA", "Tetra", validity_days=3650), root_key, now)
    issuing_key = generate_private_key("ec-p256")
    issuing = create_intermediate(
        CAProfile("Tetra Demo Issuing CA", "Tetra", validity_days=1825, path_length=0),
        issuing_key.public_key(),
        root,
        root_key,
        now,
    )
    save_encrypted_key(root_key, directory / "keys" / "root.key", passphrase)
    save_encrypted_key(issuing_key, directory / "keys" / "issuing-ca.key", passphrase)
    _write(directory / "ca" / "root.pem", _pem(root))
    _write(directory / "ca" / "issuing-ca.pem", _pem(issuing))
    ra_key = generate_private_key("rsa-2048")
    save_encrypted_key(ra_key, directory / "keys" / "ra.key", passphrase)
    save_encrypted_key(generate_private_key("ec-p256"), directory / "keys" / "ocsp-responder.key", passphrase)
    # The RA certificate is issued below through the core; a placeholder keeps config loading simple.
    _write(directory / "ra" / "ra.pem", _pem(issuing))
    shutil.copytree(profiles, directory / "profiles", dirs_exist_ok=True)
    if not http_url:
        _allow_internal_names(directory / "profiles" / "tls-server.toml")
    config_path = directory / "tetra.toml"
    _write(config_path, render_config(http, https, protocols, http_url).encode())
    tls_key = generate_private_key("ec-p256")
    _write(
        directory / "tls" / "server.key",
        tls_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        0o600,
    )
    _write(directory / "tls" / "server.pem", b"")

    environ = {"TETRA_DATABASE__URL": database_url} if database_url else {}
    config = read_config(config_path, environ=environ)
    upgrade(config.database_url)
    ca = await build_ca(config)
    try:
        issuer = ca.issuers[config.default_issuer]
        operator = Requester("tetra-init", AuthMethod.OPERATOR)
        names = tuple(Identifier("ip" if _is_ip(h) else "dns", h) for h in hostnames)
        tls_req = EnrollmentRequest("cli", "tetra-service-tls", tls_key.public_key(), x509.Name([]), names, operator)
        tls_tpl = build_template(
            service_tls_profile(), tls_req, issuer_name=issuer.name, issuer_not_after=issuer.not_after, now=now
        )
        tls_cert, _ = await issuer.issue(tls_tpl, Intent(protocol="cli", requester="tetra-init"))
        _write(directory / "tls" / "server.pem", _pem(tls_cert) + b"".join(_pem(c) for c in issuer.chain))
        ra_subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tetra"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Tetra SCEP RA"),
            ]
        )
        ra_req = EnrollmentRequest("cli", "tetra-ra", ra_key.public_key(), ra_subject, (), operator)
        ra_tpl = build_template(
            ra_profile(), ra_req, issuer_name=issuer.name, issuer_not_after=issuer.not_after, now=now
        )
        ra_cert, _ = await issuer.issue(ra_tpl, Intent(protocol="cli", requester="tetra-init"))
        _write(directory / "ra" / "ra.pem", _pem(ra_cert))
        await _bootstrap_admin(ca, directory / "secrets")
    finally:
        await ca.close()
    return InitResult(config_path, fingerprint_sha256(root))


async def _bootstrap_admin(ca: CertificateAuthority, secrets_dir: Path) -> None:
    """The first user, `admin` (administrator), with a random dashboard password in
    secrets/admin-password and an API token in secrets/api-token (the file the API's shared
    token used to be, so guides that read it keep working). Both 0600; neither is printed."""
    password = secrets.token_urlsafe(18)
    await ca.operators.users.add(ADMIN_USER, Role.ADMINISTRATOR, actor="cli:tetra-init", password=password)
    _, token = await ca.operators.tokens.create(
        ADMIN_USER, label="tetra-init", scopes=None, expires_at=None, actor="cli:tetra-init"
    )
    _write(secrets_dir / "admin-password", password.encode() + b"\n", 0o600)
    _write(secrets_dir / "api-token", token.encode() + b"\n", 0o600)


def _allow_internal_names(profile: Path) -> None:
    """The demo serves on loopback: its CRL/OCSP URLs and test names are internal, which the
    CA/B Forum lint rightly refuses for a public CA. Accept exactly that finding here."""
    text = profile.read_text()
    note = (
        "# Added by `tetra init`: this demo CA lives on loopback, so internal names are expected.\n"
        'lint_ignore = ["cabf.internal_domain_name", "cabf.internal_ip_address"]\n'
    )
    profile.write_text(note + text)


def _is_ip(text: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
