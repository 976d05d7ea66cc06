"""What is wrong with a presented chain, as findings rather than as one verification error.

A verifier stops at the first problem and says "invalid"; an inventory wants every problem with a
name (expired and also signed with SHA-1 and also missing its intermediate). So the path is built
here by name and signature, from the leaf through the
presented certificates to a trusted root, and each certificate on it is checked on its own.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from ca.inventory.facts import parse_der_certificate
from server.discovery.findings import Finding, finding
from server.discovery.hostname import covered_names, name_matches

MIN_KEY_BITS = 2048
MAX_PATH = 10  # certificates on a path; deeper chains are not real
_WEAK_SIGNATURES = {
    SignatureAlgorithmOID.RSA_WITH_MD5: "md5WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    x509.ObjectIdentifier("1.3.14.3.2.29"): "sha1WithRSASignature (OIW)",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.DSA_WITH_SHA1: "dsa-with-sha1",
}


def check_chain(
    chain: Sequence[bytes], *, trust: Sequence[x509.Certificate], now: dt.datetime, server_name: str | None
) -> list[Finding]:
    """Findings on the chain as presented (DER, leaf first); nothing for an empty chain."""
    findings: list[Finding] = []
    presented: list[x509.Certificate] = []
    for position, der in enumerate(chain):
        try:
            presented.append(_parsed(der))
        except ValueError as exc:
            findings.append(finding("malformed-certificate", f"certificate {position} of the chain: {exc}"))
            if position == 0:
                return findings
    if not presented:
        return findings
    leaf = presented[0]
    path, ending = _build_path(leaf, presented[1:], trust)
    if ending is not None:
        findings.append(ending)
    for cert in path:
        findings.extend(_certificate_findings(cert, now, is_root=cert is not leaf and _self_signed(cert)))
    if server_name is not None and not name_matches(server_name, leaf):
        names = ", ".join(covered_names(leaf)) or "no subjectAltName"
        findings.append(finding("hostname-mismatch", f"{server_name} is not covered by {names}"))
    return findings


def _parsed(der: bytes) -> x509.Certificate:
    """A certificate whose fields the checks read are known to decode (cryptography decodes names
    and times lazily, so a bad one would otherwise raise in the middle of a check)."""
    cert = parse_der_certificate(der)
    cert.subject.rfc4514_string()
    cert.issuer.rfc4514_string()
    _ = cert.not_valid_before_utc, cert.not_valid_after_utc, cert.signature_algorithm_oid, cert.tbs_certificate_bytes
    return cert


def _build_path(
    leaf: x509.Certificate, presented: Sequence[x509.Certificate], trust: Sequence[x509.Certificate]
) -> tuple[list[x509.Certificate], Finding | None]:
    """The presented certificates from the leaf up, and how the path ends when not at a trusted root."""
    trusted = _by_subject(trust)
    candidates = _by_subject(presented)
    path = [leaf]
    current = leaf
    while len(path) < MAX_PATH:
        if _issuer_among(current, trusted.get(current.issuer, [])) is not None:
            return path, None
        if _self_signed(current):
            if current is leaf:
                return path, finding("self-signed", f"{_name(leaf)} is self-signed and not trusted")
            return path, finding("unknown-root", f"the chain ends at {_name(current)}, which is not trusted")
        issuer = _issuer_among(current, [c for c in candidates.get(current.issuer, []) if c not in path])
        if issuer is None:
            return path, finding(
                "missing-intermediate",
                f"the issuer of {_name(current)} ({current.issuer.rfc4514_string()}) is neither presented nor trusted",
            )
        path.append(issuer)
        current = issuer
    return path, finding("missing-intermediate", f"no trusted root within {MAX_PATH} certificates")


def _certificate_findings(cert: x509.Certificate, now: dt.datetime, *, is_root: bool) -> list[Finding]:
    found = []
    if cert.not_valid_after_utc < now:
        found.append(finding("expired", f"{_name(cert)} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"))
    if cert.not_valid_before_utc > now:
        found.append(
            finding("not-yet-valid", f"{_name(cert)} is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
        )
    bits = _key_bits(cert)
    if bits is not None and bits < MIN_KEY_BITS:
        found.append(finding("weak-key", f"{_name(cert)} has a {bits}-bit key"))
    if not is_root and cert.signature_algorithm_oid in _WEAK_SIGNATURES:
        algorithm = _WEAK_SIGNATURES[cert.signature_algorithm_oid]
        found.append(finding("weak-signature", f"{_name(cert)} is signed with {algorithm}"))
    return found


def _key_bits(cert: x509.Certificate) -> int | None:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None
    return key.key_size if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) else None


def _by_subject(certs: Sequence[x509.Certificate]) -> dict[x509.Name, list[x509.Certificate]]:
    index: dict[x509.Name, list[x509.Certificate]] = {}
    for cert in certs:
        index.setdefault(cert.subject, []).append(cert)
    return index


def _issuer_among(cert: x509.Certificate, candidates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    for candidate in candidates:
        if _signed_by(cert, candidate):
            return candidate
    return None


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Name and signature, checked by hand: cryptography's own check (verify_directly_issued_by)
    refuses SHA-1 and MD5 signatures, which are exactly the ones a discovery report must name."""
    if cert.issuer != issuer.subject:
        return False
    data, signature = cert.tbs_certificate_bytes, cert.signature
    try:
        key = issuer.public_key()
        algorithm = cert.signature_hash_algorithm
        if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        elif algorithm is None:
            return False
        elif isinstance(key, rsa.RSAPublicKey):
            pss = cert.signature_algorithm_oid == SignatureAlgorithmOID.RSASSA_PSS
            scheme = cert.signature_algorithm_parameters if pss else padding.PKCS1v15()
            if not isinstance(scheme, padding.PSS | padding.PKCS1v15):
                return False
            key.verify(signature, data, scheme, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, dsa.DSAPublicKey):
            key.verify(signature, data, algorithm)
        else:
            return False
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject and _signed_by(cert, cert)


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"
