"""Real certificate files for the inventory tests, made the way operators make them.

The chain is made with cryptography; the containers around it are made by the tools that
make them in the field (openssl for PKCS#7 and PKCS#12, keytool for JKS, JCEKS and PKCS12
keystores), so the readers are checked against those tools' output, not against our own.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

OPENSSL = shutil.which("openssl")
KEYTOOL = shutil.which("keytool")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command line not installed")
needs_keytool = pytest.mark.skipif(KEYTOOL is None, reason="keytool (Java) not installed")
STORE_PASSWORD = "changeit"


@dataclass(frozen=True)
class Chain:
    root: x509.Certificate
    leaf: x509.Certificate
    other: x509.Certificate  # an unrelated self-signed certificate, for "trusted" entries
    root_pem: Path
    leaf_pem: Path
    other_pem: Path
    key_pem: Path  # the leaf's private key, unencrypted PKCS#8


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def make_chain(directory: Path) -> Chain:
    """A root, a leaf it signed (with the leaf's key on disk) and an unrelated certificate, as PEM files."""
    root_key, leaf_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _certificate("Inventory Test Root", root_key, "Inventory Test Root", root_key, ca=True)
    leaf = _certificate("leaf.example.com", leaf_key, "Inventory Test Root", root_key, ca=False)
    other = _certificate("Other Trusted Root", other_key, "Other Trusted Root", other_key, ca=True)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, certificate in (("root", root), ("leaf", leaf), ("other", other)):
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_pem = directory / "leaf.key"
    key_pem.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return Chain(root, leaf, other, paths["root"], paths["leaf"], paths["other"], key_pem)


def run(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    """Run a tool; a failure shows its stderr."""
    result = subprocess.run([str(arg) for arg in args], capture_output=True, timeout=120, check=False)
    if result.returncode != 0:
        raise AssertionError(f"{args[0]} failed: {result.stderr.decode(errors='replace')}")
    return result


def openssl_pkcs12(chain: Chain, out: Path, password: str, *extra: str) -> Path:
    """`openssl pkcs12 -export` of the leaf, its key and the root."""
    assert OPENSSL is not None
    run(OPENSSL, "pkcs12", "-export", "-in", chain.leaf_pem, "-inkey", chain.key_pem, "-certfile", chain.root_pem,
        "-out", out, "-passout", f"pass:{password}", *extra)  # fmt: skip
    return out


def keytool_store(chain: Chain, directory: Path, store_type: str) -> Path:
    """A keytool store of ``store_type`` with a private key entry (leaf key, chain leaf+root) and
    a trusted certificate entry (the unrelated root)."""
    assert KEYTOOL is not None
    source = openssl_pkcs12(chain, directory / f"source-{store_type}.p12", STORE_PASSWORD)
    store = directory / f"store.{store_type.lower()}"
    run(KEYTOOL, "-importkeystore", "-noprompt", "-srckeystore", source, "-srcstoretype", "PKCS12",
        "-srcstorepass", STORE_PASSWORD, "-destkeystore", store, "-deststoretype", store_type,
        "-deststorepass", STORE_PASSWORD, "-destkeypass", STORE_PASSWORD)  # fmt: skip
    run(KEYTOOL, "-importcert", "-noprompt", "-alias", "other-root", "-file", chain.other_pem,
        "-keystore", store, "-storetype", store_type, "-storepass", STORE_PASSWORD)  # fmt: skip
    return store
