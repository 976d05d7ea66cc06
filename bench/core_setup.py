"""Fixtures for bench_core.py: throwaway CA directories, a SoftHSM token, fresh databases,
pre-built enrollment requests and the plain-cryptography build-and-sign baseline.

Nothing here is timed except `Baseline.build_and_sign`.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, EnrollmentRequest, Requester
from ca.hierarchy import CAProfile, create_intermediate
from ca.issuer import Issuer
from ca.keys import generate_private_key
from ca.signers.software import load_encrypted_key, save_encrypted_key
from ca.store.migrate import upgrade
from server.config import Listen

PUBLIC_URL = "http://pki.example.com"  # lints clean under the CA/B Forum rules (see tests/conftest.py)
PG_ADMIN = os.environ.get("TETRA_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
HSM_TOKEN = "tetra-bench"
HSM_PIN_ENV = "TETRA_BENCH_HSM_PIN"
BENCH_PROFILE = "bench-tls"  # tls-server with lint = "none"
LINT_PROFILE = "tls-server"  # as shipped: pkilint, cabf-serverauth

# backend id -> (label in the table, issuer name in the CA directory)
BACKENDS: dict[str, tuple[str, str]] = {
    "sw-p256": ("software P-256", "issuing-ca"),
    "sw-rsa2048": ("software RSA-2048", "bench-rsa"),
    "hsm-p256": ("SoftHSM P-256", "bench-hsm"),
}


# -- SoftHSM -----------------------------------------------------------------------------


def init_softhsm(root: Path) -> None:
    """A private SoftHSM2 token directory; must run before the module is first loaded."""
    util = shutil.which("softhsm2-util")
    if util is None or not Path(SOFTHSM_MODULE).is_file():
        raise RuntimeError(f"SoftHSM2 is not installed ({SOFTHSM_MODULE} / softhsm2-util)")
    (root / "tokens").mkdir(parents=True, exist_ok=True)
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pin = secrets.token_hex(4)
    os.environ[HSM_PIN_ENV] = pin
    subprocess.run(
        [util, "--init-token", "--free", "--label", HSM_TOKEN, "--pin", pin, "--so-pin", pin + "so"],
        check=True,
        capture_output=True,
        text=True,
    )


# -- CA directories ----------------------------------------------------------------------


def _write_bench_profile(directory: Path) -> None:
    shipped = (directory / "profiles" / f"{LINT_PROFILE}.toml").read_text()
    if 'lint = "pkilint"' not in shipped:
        raise SystemExit('profiles/tls-server.toml no longer says lint = "pkilint"; update the bench')
    text = shipped.replace('lint = "pkilint"', 'lint = "none"')
    (directory / "profiles" / f"{BENCH_PROFILE}.toml").write_text(
        "# Written by bench/bench_core.py: tls-server without the pkilint gate.\n" + text
    )


def _add_issuer(
    directory: Path, name: str, public_key: CertificateIssuerPublicKeyTypes, signer_lines: list[str]
) -> None:
    root = x509.load_pem_x509_certificate((directory / "ca" / "root.pem").read_bytes())
    passphrase = (directory / "secrets" / "passphrase").read_bytes().rstrip(b"\r\n")
    root_key = load_encrypted_key(directory / "keys" / "root.key", passphrase)
    cert = create_intermediate(
        CAProfile(f"Tetra Bench {name}", "Tetra", validity_days=1825, path_length=0), public_key, root, root_key
    )
    (directory / "ca" / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    config = directory / "tetra.toml"
    text = config.read_text()
    if 'default_issuer = "issuing-ca"' not in text:
        raise SystemExit('the demo config no longer has default_issuer = "issuing-ca"; update the bench')
    text = text.replace('default_issuer = "issuing-ca"', f'default_issuer = "{name}"')
    text += "\n".join(
        [
            f"\n[signers.{name}]",
            *signer_lines,
            f"\n[issuers.{name}]",
            f'certificate = "ca/{name}.pem"',
            f'signer = "{name}"',
            "",
        ]
    )
    config.write_text(text)


async def make_ca_dir(root: Path, backend: str) -> Path:
    """`tetra init`'s demo CA, plus (for RSA and SoftHSM) an issuing CA of that kind as default issuer."""
    from server.demo import init_demo

    directory = root / backend
    await init_demo(
        directory,
        http=Listen("127.0.0.1", 8080),
        https=Listen("127.0.0.1", 8443),
        hostnames=["localhost", "127.0.0.1"],
        protocols=[],
        http_url=PUBLIC_URL,
    )
    _write_bench_profile(directory)
    name = BACKENDS[backend][1]
    if backend == "sw-rsa2048":
        key = generate_private_key("rsa-2048")
        passphrase = (directory / "secrets" / "passphrase").read_bytes().rstrip(b"\r\n")
        save_encrypted_key(key, directory / "keys" / f"{name}.key", passphrase)
        _add_issuer(
            directory,
            name,
            key.public_key(),
            ['backend = "software"', f'key_file = "keys/{name}.key"', 'passphrase_file = "secrets/passphrase"'],
        )
    elif backend == "hsm-p256":
        from ca.signers.pkcs11 import Pkcs11Signer, generate_token_key

        label = f"{name}-{secrets.token_hex(4)}"
        uri = f"pkcs11:token={quote(HSM_TOKEN, safe='')};object={quote(label, safe='')}"
        pin = os.environ[HSM_PIN_ENV]
        generate_token_key(SOFTHSM_MODULE, uri, "ec-p256", pin)
        signer = await Pkcs11Signer.open(name, SOFTHSM_MODULE, uri, pin)
        public = signer.public_key()
        await signer.close()
        _add_issuer(
            directory,
            name,
            public,
            ['backend = "pkcs11"', f'module = "{SOFTHSM_MODULE}"', f'uri = "{uri}"', f'pin_env = "{HSM_PIN_ENV}"'],
        )
    return directory


# -- databases ---------------------------------------------------------------------------


def _pg_exec(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def pg_setting(name: str) -> str:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(f"SHOW {name}").fetchone()
        assert row is not None
        return str(row[0])


@dataclass
class FreshDatabase:
    url: str
    pg_name: str | None = None

    def drop(self) -> None:
        if self.pg_name:
            _pg_exec(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        else:
            path = Path(self.url.removeprefix("sqlite:///"))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)


def fresh_database(kind: str, directory: Path, tag: str) -> FreshDatabase:
    """An empty, migrated database: a new SQLite file on disk, or a new PostgreSQL database."""
    if kind == "sqlite":
        directory.mkdir(parents=True, exist_ok=True)
        db = FreshDatabase(f"sqlite:///{directory / f'{tag}.db'}")
    else:
        name = f"tetra_bench_{secrets.token_hex(5)}"
        _pg_exec(f'CREATE DATABASE "{name}"')
        db = FreshDatabase(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", name)
    upgrade(db.url)
    return db


# -- requests ----------------------------------------------------------------------------


def make_requests(count: int, profile: str, host: str = "") -> list[EnrollmentRequest]:
    """`count` distinct P-256 keys and CSRs (one DNS name each: hostN.bench.example.com, or
    ``host`` for all of them, as one device re-keying would ask), turned into requests as a
    protocol would."""
    requester = Requester("bench", AuthMethod.OPERATOR)
    out = []
    for i in range(count):
        key = ec.generate_private_key(ec.SECP256R1())
        name = host or f"host{i}.bench.example.com"
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256())
        )
        out.append(enrollment_from_csr(csr, protocol="cli", profile_name=profile, requester=requester))
    return out


# -- the baseline: cryptography alone ----------------------------------------------------


class Baseline:
    """Builds and signs the certificate the core would issue for a request, with
    cryptography's CertificateBuilder and the issuer's own key: no policy, no store,
    no throwaway-key twin, no verification. Extension values that do not depend on
    the request are prepared once, as any tuned issuer would."""

    def __init__(
        self,
        issuer: Issuer,
        template_key_usage: x509.KeyUsage,
        eku: list[x509.ObjectIdentifier],
        policies: list[x509.ObjectIdentifier],
        hash_alg: hashes.HashAlgorithm | None,
    ) -> None:
        self.issuer_name = issuer.certificate.subject
        self.key: CertificateIssuerPrivateKeyTypes = issuer.signer.private_key()
        self.hash = hash_alg
        ski = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        urls = issuer.urls
        self.static: list[tuple[x509.ExtensionType, bool]] = [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (template_key_usage, True),
            (x509.ExtendedKeyUsage(eku), False),
        ]
        self.after_san: list[tuple[x509.ExtensionType, bool]] = [
            (x509.CertificatePolicies([x509.PolicyInformation(p, None) for p in policies]), False),
        ]
        self.tail: list[tuple[x509.ExtensionType, bool]] = [
            (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False),
            (
                x509.CRLDistributionPoints(
                    [x509.DistributionPoint([x509.UniformResourceIdentifier(urls.crl)], None, None, None)]
                ),
                False,
            ),
            (
                x509.AuthorityInformationAccess(
                    [
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(urls.ocsp)
                        ),
                        x509.AccessDescription(
                            AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(urls.ca_issuers)
                        ),
                    ]
                ),
                False,
            ),
        ]

    def build_and_sign(self, request: EnrollmentRequest) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        host = request.subject_alt_names[0].value
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self.issuer_name)
            .public_key(request.public_key)
            .serial_number(int.from_bytes(secrets.token_bytes(16), "big") or 1)
            .not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=90))
        )
        for ext, critical in self.static:
            builder = builder.add_extension(ext, critical)
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), False)
        for ext, critical in self.after_san:
            builder = builder.add_extension(ext, critical)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(request.public_key), False)
        for ext, critical in self.tail:
            builder = builder.add_extension(ext, critical)
        return builder.sign(self.key, self.hash)  # type: ignore[arg-type]


def same_shape(a: x509.Certificate, b: x509.Certificate) -> list[str]:
    """Differences between two certificates other than serial, validity and signature."""
    problems = []
    if a.subject != b.subject:
        problems.append(f"subject {a.subject.rfc4514_string()} != {b.subject.rfc4514_string()}")
    if a.issuer != b.issuer:
        problems.append("issuer differs")
    if a.public_key() != b.public_key():
        problems.append("public key differs")
    if a.signature_algorithm_oid != b.signature_algorithm_oid:
        problems.append("signature algorithm differs")
    ea = [(e.oid.dotted_string, e.critical, e.value) for e in a.extensions]
    eb = [(e.oid.dotted_string, e.critical, e.value) for e in b.extensions]
    if ea != eb:
        problems.append(f"extensions differ: {[x[:2] for x in ea]} vs {[x[:2] for x in eb]}")
    if abs(len(a.tbs_certificate_bytes) - len(b.tbs_certificate_bytes)) > 2:  # serial length may vary by a byte
        problems.append(f"TBS length {len(a.tbs_certificate_bytes)} vs {len(b.tbs_certificate_bytes)}")
    return problems
