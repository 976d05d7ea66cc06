"""What a root rollover offers the protocols: the link certificates of RFC 4210 §4.4.

A root's newer generation carries newWithOld (its key certified by the old root's) and
oldWithNew (the old key certified by the new one). A chain that ends at the old root reaches
the new root through oldWithNew, and one that ends at the new root reaches the old root
through newWithOld; CMP rootCaKeyUpdate, EST cacerts and ACME alternate chains are built here.
"""

from __future__ import annotations

from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

from ca.authorities.model import Authority, Kind

RootUpdate = tuple[x509.Certificate, x509.Certificate, x509.Certificate]  # newWithNew, newWithOld, oldWithNew


def root_above(top: x509.Certificate, authorities: Iterable[Authority]) -> Authority | None:
    """The registered root generation whose key signed ``top`` (a chain's last certificate)."""
    for a in authorities:
        if a.kind is Kind.ROOT and a.der is not None and a.certificate.subject == top.issuer:
            try:
                top.verify_directly_issued_by(a.certificate)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return a
    return None


def registered_root(cert: x509.Certificate, authorities: Iterable[Authority]) -> Authority | None:
    """The root generation whose certificate is ``cert`` (a client names the root it trusts)."""
    der = cert.public_bytes(Encoding.DER)
    return next((a for a in authorities if a.kind is Kind.ROOT and a.der == der), None)


def root_update(root: Authority, authorities: Iterable[Authority]) -> RootUpdate | None:
    """The newest generation after ``root`` in its family, staged or active, with its links."""
    newer = [
        a
        for a in authorities
        if a.family == root.family
        and a.generation > root.generation
        and a.der is not None
        and a.revoked_at is None
        and len(a.links) == 2
    ]
    if not newer:
        return None
    latest = max(newer, key=lambda a: a.generation)
    return latest.certificate, latest.links[0], latest.links[1]


def alternate_chains(
    chain: tuple[x509.Certificate, ...], root: Authority, update: RootUpdate | None
) -> list[tuple[x509.Certificate, ...]]:
    """``chain`` (which ends below ``root``) extended to the other root of a rollover: through
    oldWithNew to the newer root, and through newWithOld to the older root ``root`` replaced."""
    out: list[tuple[x509.Certificate, ...]] = []
    if update is not None:
        out.append((*chain, update[2]))
    if root.revoked_at is None and len(root.links) == 2:
        out.append((*chain, root.links[0]))
    return out
