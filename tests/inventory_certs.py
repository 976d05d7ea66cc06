"""Certificates from elsewhere, for the inventory, notification and report tests: a stranger's
modern certificate, and an old appliance's RSA-1024 one signed with SHA-1."""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ca.keys import generate_private_key


def foreign_der(cn: str, *, not_after: dt.datetime, not_before: dt.datetime | None = None, san: bool = True) -> bytes:
    """A certificate another CA made (self-signed here, EC P-256, SHA-256), valid from
    ``not_before`` (default: 60 days before it ends) to ``not_after``, naming ``cn`` as a SAN too."""
    key = generate_private_key("ec-p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or not_after - dt.timedelta(days=60))
        .not_valid_after(not_after)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def legacy_der(cn: str, directory: Path, *, days: int = 400) -> bytes:
    """What an old appliance carries: RSA-1024 signed with SHA-1, valid for ``days`` from now
    (made by openssl: cryptography no longer signs with SHA-1)."""
    out = directory / f"{cn}.der"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:1024", "-sha1", "-nodes", "-keyout", "/dev/null", "-subj",
         f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}", "-days", str(days), "-outform", "DER", "-out", str(out)],
        check=True, capture_output=True,
    )  # fmt: skip
    return out.read_bytes()
