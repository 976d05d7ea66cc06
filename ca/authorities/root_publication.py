"""What an offline root says about the CA certificates it signed, signed ahead of time.

A root's key never enters the server, so whatever the root must sign is signed by a command
that has the key in hand (`tetra ca revoke`, `tetra crl generate --ca ROOT`) and stored for the
server to serve as it is:

- its ARL: a CRL listing every registered generation it signed that is revoked, with a CRL
  number from the counter its issuers' CRLs use (ca/revocation/crl_store.py, never repeated and
  never going backwards), stored in the ``crls`` table under the root's name, so the CRL
  handler serves it at ``/crl/<root>.crl``;
- one OCSP response per CA certificate it signed and per CertID hash, good or revoked,
  stored in ``ocsp_responses`` under the root's name (ca/revocation/ocsp_roots.py serves them).

Both carry the same, long nextUpdate: the operator renews them before it with the root's key.
Everything happens in the caller's transaction, so a revocation and what the root publishes
about it are committed together or not at all. Each document is linted on a throwaway-key
twin before the root key signs it (docs/reliability.md, demand 2); an OCSP response, which
cryptography signs only with the responder's own key, is linted once signed, before it is stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import update

from ca.authorities.model import Authority
from ca.authorities.store import children
from ca.errors import InternalError, SignerUnavailable
from ca.issuer import throwaway_key
from ca.keys import default_hash
from ca.revocation import crl_store, feed, ocsp_store
from ca.revocation.pointers import FULL
from ca.revocation.reasons import reason_flag
from ca.revocation.tables import crls
from ca.sigalg import verify_bytes
from ca.store.db import Tx
from ca.store.repositories import serial_text

COMPLETE = "complete"  # the crls.kind of a complete CRL (ca/revocation/crl.py)
CERT_ID_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class RootPublication:
    """What one publication stored, for the command's output."""

    root: str
    number: int  # the ARL's CRL number
    revoked: int  # entries on the ARL
    certificates: int  # CA certificates the root answers OCSP for
    answers: int  # OCSP responses stored (certificates x CertID hashes)
    next_update: dt.datetime


def _aki(root: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(root.public_key())  # type: ignore[arg-type]


def _reason(child: Authority) -> x509.ReasonFlags | None:
    """RFC 5280 §5.3.1: the reasonCode is left out rather than saying 'unspecified'."""
    name = child.revocation_reason or "unspecified"
    return None if name == "unspecified" else reason_flag(name)


def arl_builder(
    root: x509.Certificate, revoked: list[Authority], number: int, this_update: dt.datetime, next_update: dt.datetime
) -> x509.CertificateRevocationListBuilder:
    """The ARL before signing: onlyContainsCACerts (critical IssuingDistributionPoint), AKI, number."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(_aki(root), critical=False)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.IssuingDistributionPoint(None, None, False, True, None, False, False), critical=True)
    )
    for child in revoked:
        assert child.revoked_at is not None
        entry = x509.RevokedCertificateBuilder().serial_number(child.certificate.serial_number)
        entry = entry.revocation_date(child.revoked_at.replace(microsecond=0))
        reason = _reason(child)
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder


def ocsp_builder(
    root: x509.Certificate, child: Authority, hash_name: str, this_update: dt.datetime, next_update: dt.datetime
) -> ocsp.OCSPResponseBuilder:
    """One response about ``child`` for CertIDs made with ``hash_name``, the root its own responder."""
    revoked = child.revoked_at is not None
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=child.certificate,
        issuer=root,
        algorithm=CERT_ID_HASHES[hash_name](),
        cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
        this_update=this_update,
        next_update=next_update,
        revocation_time=child.revoked_at.replace(microsecond=0) if child.revoked_at is not None else None,
        revocation_reason=_reason(child) if revoked else None,
    )
    return builder.responder_id(ocsp.OCSPResponderEncoding.HASH, root)


def _lint(kind: str, findings: list[Any]) -> None:
    if findings:
        from ca.lint import format_findings

        raise InternalError(f"{kind} lint (pkix) refused: {format_findings(findings)}")


def _signed_arl(
    builder: x509.CertificateRevocationListBuilder,
    key: CertificateIssuerPrivateKeyTypes,
    public: CertificateIssuerPublicKeyTypes,
) -> bytes:
    from ca.lint import lint_crl

    algorithm = default_hash(public)
    twin = builder.sign(throwaway_key(public), algorithm)
    _lint("ARL", lint_crl(twin.public_bytes(Encoding.DER), profile="pkix"))
    arl = builder.sign(key, algorithm)
    if not verify_bytes(public, arl.signature, arl.tbs_certlist_bytes, arl.signature_hash_algorithm):
        raise SignerUnavailable("the root's ARL signature does not verify with the root certificate")
    return arl.public_bytes(Encoding.DER)


def _signed_answer(
    builder: ocsp.OCSPResponseBuilder, key: CertificateIssuerPrivateKeyTypes, public: CertificateIssuerPublicKeyTypes
) -> bytes:
    """Signed, then linted: the builder checks the key against the responder certificate, so
    there is no throwaway-key twin; a finding rolls the transaction back and nothing is stored."""
    from ca.lint import lint_ocsp_response

    response = builder.sign(key, default_hash(public))
    if not verify_bytes(public, response.signature, response.tbs_response_bytes, response.signature_hash_algorithm):
        raise SignerUnavailable("the root's OCSP signature does not verify with the root certificate")
    der = response.public_bytes(Encoding.DER)
    _lint("OCSP response", lint_ocsp_response(der))
    return der


def publish(
    tx: Tx,
    root: Authority,
    key: CertificateIssuerPrivateKeyTypes,
    *,
    now: dt.datetime,
    next_update: dt.datetime,
    hash_names: tuple[str, ...],
    keep: int,
) -> RootPublication:
    """Sign and store the root's ARL and its OCSP answers, reading the registry in ``tx`` (so a
    revocation made earlier in the same transaction is listed). The CRL number is taken first:
    its counter row lock makes two publications for one root run one after the other, the
    second seeing the first's revocation."""
    this_update = now.replace(microsecond=0)
    certificate = root.certificate
    public: CertificateIssuerPublicKeyTypes = certificate.public_key()  # type: ignore[assignment]
    row_id, number = crl_store.reserve(
        tx,
        root.name,
        FULL,
        COMPLETE,
        base_number=None,
        watermark=feed.head(tx.conn),
        entries=0,  # set below, once the registry is read under the counter's lock
        this_update=this_update,
        next_update=next_update,
        now=now,
    )
    signed = [c for c in children(tx.conn, root.name) if c.der is not None]
    revoked = [c for c in signed if c.revoked_at is not None]
    tx.conn.execute(update(crls).where(crls.c.id == row_id).values(entries=len(revoked)))
    arl = _signed_arl(arl_builder(certificate, revoked, number, this_update, next_update), key, public)
    crl_store.publish(tx, row_id, arl, hashlib.sha256(arl).hexdigest(), now, keep)
    rows = [
        {
            "issuer": root.name,
            "serial": serial_text(child.certificate.serial_number),
            "hash_alg": name,
            "status": "revoked" if child.revoked_at is not None else "good",
            "revoked_at": child.revoked_at,
            "revocation_reason": child.revocation_reason,
            "cert_not_after": child.certificate.not_valid_after_utc,
            "der": _signed_answer(ocsp_builder(certificate, child, name, this_update, next_update), key, public),
            "this_update": this_update,
            "next_update": next_update,
            "produced_at": this_update,
        }
        for child in signed
        for name in hash_names
    ]
    ocsp_store.upsert_responses(tx, rows)
    return RootPublication(root.name, number, len(revoked), len(signed), len(rows), next_update)
