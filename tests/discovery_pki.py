"""Certificates for the discovery tests: a root, an intermediate and leaves made to order (expired,
not yet valid, weak keys, SHA-1 signatures, padded to any size), all with cryptography."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
LEAF_NAME = "www.example.test"


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(
    cn: str,
    *,
    issuer: Issued | None,
    ca: bool = False,
    names: Sequence[str] = (),
    key: PrivateKey | None = None,
    valid: tuple[dt.timedelta, dt.timedelta] = (dt.timedelta(hours=-1), dt.timedelta(days=30)),
    padding_bytes: int = 0,
) -> Issued:
    """A certificate for ``cn`` signed by ``issuer`` (self-signed when None), valid from now+valid[0]
    to now+valid[1]; ``padding_bytes`` of an unknown extension make it as large as a test needs."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    signer = issuer.key if issuer is not None else key
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject if issuer is not None else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid[0])
        .not_valid_after(now + valid[1])
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
    if padding_bytes:
        padding = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\0" * padding_bytes)
        builder = builder.add_extension(padding, critical=False)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


def resigned_with_sha1(issued: Issued, issuer: Issued) -> Issued:
    """The same certificate signed again with SHA-1, which cryptography no longer signs with: the
    algorithm is swapped in the TBS with asn1crypto and the raw signature made with the issuer's key."""
    certificate = asn1_x509.Certificate.load(issued.cert.public_bytes(serialization.Encoding.DER))
    name = "sha1_rsa" if isinstance(issuer.key, rsa.RSAPrivateKey) else "sha1_ecdsa"
    tbs = certificate["tbs_certificate"]
    tbs["signature"] = asn1_x509.SignedDigestAlgorithm({"algorithm": name})
    data = tbs.dump(force=True)
    if isinstance(issuer.key, rsa.RSAPrivateKey):
        signature = issuer.key.sign(data, padding.PKCS1v15(), hashes.SHA1())
    else:
        signature = issuer.key.sign(data, ec.ECDSA(hashes.SHA1()))
    resigned = asn1_x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": {"algorithm": name}, "signature_value": signature}
    )
    return Issued(x509.load_der_x509_certificate(resigned.dump()), issued.key)


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    leaf: Issued  # for LEAF_NAME, from the intermediate

    def leaf_from_intermediate(self, **options: Any) -> Issued:
        return issue("leaf", issuer=self.intermediate, names=options.pop("names", [LEAF_NAME]), **options)


@functools.cache
def shared_pki() -> Pki:
    """One root, intermediate and leaf for all the tests of a run (EC keys: quick to make)."""
    root = issue("Discovery Test Root", issuer=None, ca=True)
    intermediate = issue("Discovery Test Intermediate", issuer=root, ca=True)
    return Pki(root, intermediate, issue("leaf", issuer=intermediate, names=[LEAF_NAME]))


def der(*certs: x509.Certificate) -> tuple[bytes, ...]:
    return tuple(cert.public_bytes(serialization.Encoding.DER) for cert in certs)
