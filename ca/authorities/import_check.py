"""Whether a certificate from an external root may become a pending CA generation's (`tetra ca
import`, CAL-04): it is for the key `tetra ca csr` made, it is a CA, its validity has begun and not
ended, and every signature on its path up to the root verifies.

Pure: certificates, a public key and a time in; the checked path out, or `ImportRefused` with the
one reason that the command reports and audits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

MAX_PATH = 8  # certificates between the CA and its root


class ImportRefused(Exception):
    """The one reason a certificate is not imported."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CheckedPath:
    """What lies above the imported CA: the intermediates (nearest first) and the root."""

    intermediates: tuple[x509.Certificate, ...]
    root: x509.Certificate


def check_import(
    cert: x509.Certificate,
    pending_key: PublicKeyTypes,
    chain: Sequence[x509.Certificate],
    trusted_roots: Sequence[x509.Certificate],
    now: dt.datetime,
) -> CheckedPath:
    """The path from ``cert`` to its root. The root is the chain's last certificate when that one
    is self-signed (an external root the operator hands over), else one of ``trusted_roots``."""
    if _spki(cert.public_key()) != _spki(pending_key):
        raise ImportRefused("the certificate is for another key than the one `tetra ca csr` made")
    _check_ca("the certificate", cert)
    _check_validity("the certificate", cert, now)
    given_root = chain[-1] if chain and _self_signed(chain[-1]) else None
    anchors = [given_root] if given_root is not None else list(trusted_roots)
    pool = list(chain[:-1] if given_root is not None else chain)
    path: list[x509.Certificate] = []
    current = cert
    for _ in range(MAX_PATH + 1):
        root = _signer_among(current, anchors)
        if root is not None:
            _check_validity(f"the root {_name(root)}", root, now)
            return CheckedPath(tuple(path), root)
        parent = _signer_among(current, pool)
        if parent is None or parent in path:
            break
        _check_ca(f"the chain's {_name(parent)}", parent)
        _check_validity(f"the chain's {_name(parent)}", parent, now)
        path.append(parent)
        current = parent
    target = f"the given root {_name(given_root)}" if given_root is not None else "a root this CA trusts"
    raise ImportRefused(f"the chain does not reach {target}: no certificate there signed {_name(current)}")


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _name(cert: x509.Certificate) -> str:
    return repr(cert.subject.rfc4514_string())


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _signer_among(cert: x509.Certificate, candidates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The candidate whose name is ``cert``'s issuer and whose key verifies its signature."""
    for candidate in candidates:
        if candidate.subject != cert.issuer or candidate == cert:
            continue
        try:
            cert.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _check_ca(what: str, cert: x509.Certificate) -> None:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise ImportRefused(f"{what} is not a CA certificate (basicConstraints cA is not TRUE)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise ImportRefused(f"{what} has no keyUsage extension (a CA needs keyCertSign)") from None
    if not usage.key_cert_sign:
        raise ImportRefused(f"{what} may not sign certificates (keyUsage lacks keyCertSign)")


def _check_validity(what: str, cert: x509.Certificate, now: dt.datetime) -> None:
    if cert.not_valid_before_utc > now:
        start = f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S}"
        raise ImportRefused(f"{what} is not valid before {start} UTC (its validity has not begun)")
    if cert.not_valid_after_utc <= now:
        raise ImportRefused(f"{what} expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")
