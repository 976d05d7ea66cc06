"""The openssl-made CMP vectors (tests/vectors/cmp/, see PROVENANCE.md) and their credentials."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ca.signers.software import SoftwareSigner

VECTORS = Path(__file__).resolve().parents[3] / "vectors" / "cmp"
SECRET = b"vector-secret"  # -secret pass:vector-secret in make_vectors.sh
REFERENCE = b"vector"  # -ref vector
CA_NAME = x509.Name.from_rfc4514_string("CN=CMP-Vector-CA")  # the client's -recipient


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


def mac_vectors() -> list[str]:
    return sorted(p.name for p in VECTORS.glob("*-mac.*der"))


def signed_vectors() -> list[str]:
    return sorted(p.name for p in VECTORS.glob("*-sig.*der"))


def certificate(name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((VECTORS / name).read_bytes())


def server_signer() -> SoftwareSigner:
    """The key of server.pem: the CMP signing identity replies are signed with."""
    key = load_pem_private_key((VECTORS / "server.key").read_bytes(), None)
    return SoftwareSigner("cmp-vector-server", key)  # type: ignore[arg-type]
