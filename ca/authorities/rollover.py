"""The next generation of a CA, as `tetra ca rollover` makes it (no argparse here).

An issuing CA rolls over to a new certificate from its parent, with the same key or a new one,
keeping what relying parties and profiles depend on: the subject, the path length, the name
constraints, the CRL and caIssuers pointers and the validity length. The new generation is
registered *staged* (no activation time): it is published and announced at once (EST, SCEP
GetNextCACert, /intermediates.pem) and issues only from the time `tetra ca activate` sets.

A root rolls over with a new key only, and with the link certificates of RFC 4210 §4.4:
newWithOld (the new key certified by the old one) lets a client that trusts only the old root
reach certificates under the new one; oldWithNew (the old key certified by the new one) the
reverse. Both are stored with the new root's generation (`Authority.links`).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import Encoding

from ca.authorities.lineage import active_generation, state_of
from ca.authorities.model import Authority, KeyLocation, Kind, State, generation_name
from ca.errors import CAError, FailureReason
from ca.hierarchy import CAProfile, create_intermediate, create_root
from ca.keys import describe_public_key
from ca.signers.registry import SignerSpec


def refuse(text: str) -> CAError:
    return CAError(text, FailureReason.MALFORMED)


# -- which generation rolls over ------------------------------------------------------------
def family_of(name: str, records: list[Authority]) -> list[Authority]:
    """The generations of the CA ``name`` names (a family, or one of its generations), oldest first."""
    named = next((a for a in records if a.name == name), None)
    family = named.family if named is not None else name
    members = sorted((a for a in records if a.family == family), key=lambda a: a.generation)
    if not members:
        raise refuse(f"no CA named {name!r} in the registry")
    return members


def current_of(family: list[Authority], now: dt.datetime) -> Authority:
    """The generation a rollover starts from: the newest one certified and not revoked. Refused
    while a newer generation waits (pending or staged): activate or revoke it first, so that
    what the protocols announce as "next" is never ambiguous."""
    usable = [a for a in family if a.der is not None and a.revoked_at is None]
    if not usable:
        raise refuse(f"CA {family[0].family} has no certified generation that is not revoked")
    active = active_generation(family, now)
    waiting = [
        a
        for a in family
        if a.revoked_at is None
        and (active is None or a.generation > active.generation)
        and (a.der is None or a.activate_at is None or a.activate_at > now)
    ]
    if waiting:
        state = "pending (a CSR awaits its certificate)" if waiting[0].der is None else "staged"
        raise refuse(f"{waiting[0].name} is already {state}; activate or revoke it before another rollover")
    return usable[-1]


def signing_parent(base: Authority, records: list[Authority], now: dt.datetime) -> Authority:
    """The root generation that certifies the next issuing generation: the active generation of
    the family of ``base``'s parent. A CA under a root that is not ours is re-certified there."""
    parent = next((a for a in records if a.name == base.parent), None) if base.parent else None
    if parent is None or parent.kind is not Kind.ROOT:
        raise refuse(
            f"{base.name} is certified by a CA that is not one of this server's roots: make the next generation's "
            f"key and CSR with `tetra ca csr --name {base.family}`, have that CA sign it, then `tetra ca import` it"
        )
    roots = [a for a in records if a.family == parent.family and a.revoked_at is None]
    return active_generation(roots, now) or parent


# -- what the new certificate keeps -----------------------------------------------------------
def profile_of(cert: x509.Certificate, validity_days: int | None = None) -> CAProfile:
    """A CAProfile that reproduces ``cert``: subject, path length, DNS name constraints, CRL and
    caIssuers URLs, and its validity length unless ``validity_days`` says otherwise."""
    ext = cert.extensions
    try:
        path_length = ext.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        path_length = None
    permitted: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    try:
        nc = ext.get_extension_for_class(x509.NameConstraints).value
        subtrees = [*(nc.permitted_subtrees or ()), *(nc.excluded_subtrees or ())]
        if any(not isinstance(g, x509.DNSName) for g in subtrees):
            raise refuse(
                f"{cert.subject.rfc4514_string()}: name constraints other than DNS names cannot be carried over"
            )
        permitted = tuple(str(g.value) for g in nc.permitted_subtrees or ())
        excluded = tuple(str(g.value) for g in nc.excluded_subtrees or ())
    except x509.ExtensionNotFound:
        pass
    if validity_days is None:
        length = cert.not_valid_after_utc - cert.not_valid_before_utc + dt.timedelta(seconds=1)
        validity_days = max(1, math.floor(length.total_seconds() / 86400 + 0.5))
    return CAProfile(
        common_name="",
        validity_days=validity_days,
        path_length=path_length,
        permitted_dns=permitted,
        excluded_dns=excluded,
        crl_url=_crl_url(cert),
        ca_issuers_url=_ca_issuers_url(cert),
        name=cert.subject,
    )


def _crl_url(cert: x509.Certificate) -> str:
    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return ""
    uris = [n.value for p in points for n in p.full_name or () if isinstance(n, x509.UniformResourceIdentifier)]
    return str(uris[0]) if uris else ""


def _ca_issuers_url(cert: x509.Certificate) -> str:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return ""
    uris = [
        d.access_location.value
        for d in aia
        if d.access_method == x509.oid.AuthorityInformationAccessOID.CA_ISSUERS
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]
    return str(uris[0]) if uris else ""


def next_number(family: list[Authority]) -> int:
    """The next generation number: one past every generation made, revoked ones included."""
    return max(a.generation for a in family) + 1


def issuer_public_key(cert: x509.Certificate) -> CertificateIssuerPublicKeyTypes:
    """A CA certificate's key, typed as one that signs (a CA's always is: it was loaded as an issuer)."""
    return cast(CertificateIssuerPublicKeyTypes, cert.public_key())


def key_type_of(public: CertificatePublicKeyTypes) -> str:
    """The ca.keys name of a key's type (``ec-p256``, ``rsa-3072``...): a new key is of the old one's type."""
    d = describe_public_key(public)
    return {"ec": f"ec-{d.curve}", "rsa": f"rsa-{d.size}"}.get(d.algorithm, d.algorithm)


# -- where a new key goes -------------------------------------------------------------------------
def next_key_location(current: KeyLocation, name: str) -> KeyLocation:
    """A new key beside the current one, unlocked the same way: ``<name>.key`` in the current key
    file's directory, or object ``<name>`` on the current key's token."""
    if current.backend == "pkcs11":
        from ca.signers.pkcs11_uri import format_pkcs11_uri, parse_pkcs11_uri

        uri = replace(parse_pkcs11_uri(current.uri), object=name, id=None)
        return replace(current, uri=format_pkcs11_uri(uri))
    return replace(current, key_file=str(Path(current.key_file).parent / f"{name}.key"))


def make_key(spec: SignerSpec, key_type: str) -> CertificateIssuerPrivateKeyTypes:
    """Generate the key ``spec`` names and return it ready to sign: an encrypted file (never over
    an existing one) or a non-extractable token key (its object signs inside the token)."""
    from ca.config_secrets import read_secret

    if spec.backend == "pkcs11":
        from ca.signers.pkcs11 import Pkcs11Signer
        from ca.signers.pkcs11_keygen import generate_token_key

        pin = read_secret(spec.pin_env, spec.pin_file, "PKCS#11 PIN")
        generate_token_key(spec.module, spec.uri, key_type, pin)
        return Pkcs11Signer.open_blocking(spec.name, spec.module, spec.uri, pin).private_key()
    from ca.keys import generate_private_key
    from ca.signers.software import save_encrypted_key

    assert spec.key_file is not None
    if spec.key_file.exists():
        raise refuse(f"{spec.key_file} already exists")
    passphrase = read_secret(spec.passphrase_env, spec.passphrase_file, f"{spec.key_file} passphrase")
    key = generate_private_key(key_type)
    save_encrypted_key(key, spec.key_file, passphrase)
    return key


def discard_key(spec: SignerSpec) -> str:
    """Undo `make_key` after a later step failed: a key file is removed, a token key destroyed.
    When the token will not let it go, the message names it for the operator (best effort: the
    command is failing already, and its own error is the one to report)."""
    if spec.backend == "pkcs11":
        from ca.config_secrets import read_secret
        from ca.errors import ConfigError
        from ca.signers.pkcs11_keygen import destroy_token_key

        try:
            destroy_token_key(spec.module, spec.uri, read_secret(spec.pin_env, spec.pin_file, "PKCS#11 PIN"))
        except (CAError, ConfigError):
            return f"the new key stays on the token as {spec.uri}; delete it there"
        return ""
    if spec.key_file is not None:
        spec.key_file.unlink(missing_ok=True)
    return ""


# -- the certificates ------------------------------------------------------------------------------
def issuing_generation(
    base: Authority,
    number: int,
    parent: Authority,
    parent_key: CertificateIssuerPrivateKeyTypes,
    public: CertificateIssuerPublicKeyTypes,
    key: KeyLocation | None,
    now: dt.datetime,
    validity_days: int | None = None,
) -> Authority:
    """Generation ``number`` of issuing CA ``base``'s family, certified by ``parent``, staged."""
    cert = create_intermediate(profile_of(base.certificate, validity_days), public, parent.certificate, parent_key, now)
    name = generation_name(base.family, number)
    return Authority(
        name, base.family, number, Kind.ISSUING, parent.name, cert.public_bytes(Encoding.DER), key, None, now
    )


@dataclass(frozen=True)
class RootLinks:
    """A root rollover's three certificates (RFC 4210 §4.4)."""

    new_with_new: x509.Certificate
    new_with_old: x509.Certificate
    old_with_new: x509.Certificate

    def pem(self) -> dict[str, bytes]:
        return {
            "newWithNew": self.new_with_new.public_bytes(Encoding.PEM),
            "newWithOld": self.new_with_old.public_bytes(Encoding.PEM),
            "oldWithNew": self.old_with_new.public_bytes(Encoding.PEM),
        }


def root_links(
    old: x509.Certificate,
    old_key: CertificateIssuerPrivateKeyTypes,
    new_key: CertificateIssuerPrivateKeyTypes,
    now: dt.datetime,
    validity_days: int | None = None,
) -> RootLinks:
    """newWithNew keeps the old root's subject, path length and validity length; newWithOld lasts
    as long as the old root does (a client still on the old root needs it that long); oldWithNew
    lasts until the old root expires (what the old key certified is not valid after that)."""
    profile = profile_of(old, validity_days)
    new_with_new = create_root(profile, new_key, now)
    new_with_old = create_intermediate(profile, new_key.public_key(), old, old_key, now)
    old_profile = replace(profile_of(old), not_after=old.not_valid_after_utc)
    old_with_new = create_intermediate(old_profile, issuer_public_key(old), new_with_new, new_key, now)
    for cert, issuer in ((new_with_new, new_with_new), (new_with_old, old), (old_with_new, new_with_new)):
        cert.verify_directly_issued_by(issuer)  # a token that signed wrongly fails here, before storing
    return RootLinks(new_with_new, new_with_old, old_with_new)


def root_generation(
    old: Authority, number: int, links: RootLinks, key: KeyLocation | None, now: dt.datetime
) -> Authority:
    """newWithNew as generation ``number`` of root ``old``'s family, staged, carrying its links."""
    pem = links.pem()
    return Authority(
        generation_name(old.family, number),
        old.family,
        number,
        Kind.ROOT,
        None,
        links.new_with_new.public_bytes(Encoding.DER),
        key,
        None,
        now,
        links_pem=pem["newWithOld"] + pem["oldWithNew"],
    )


# -- activation ---------------------------------------------------------------------------------------
def activation_refusal(
    record: Authority | None, family: list[Authority], name: str, at: dt.datetime, now: dt.datetime
) -> str | None:
    """Why generation ``name`` may not start issuing at ``at`` (None: it may). Activating an older,
    retired generation again is allowed: it is how an operator goes back after a bad rollover."""
    if record is None:
        return f"no CA generation named {name!r} in the registry"
    if state_of(record, family, now) is State.ACTIVE:
        return f"{name} is already the active generation of {record.family}"
    if record.revoked_at is not None:
        return f"{name} is revoked"
    if record.der is None:
        return f"{name} is pending: its certificate has not been imported (tetra ca import)"
    cert = record.certificate
    if at < now.replace(microsecond=0) - dt.timedelta(seconds=1):
        return f"{at.isoformat()} is in the past; use --at now"
    if cert.not_valid_before_utc > at:
        return f"{name}'s certificate has not begun at {at.isoformat()} (valid from {cert.not_valid_before_utc})"
    if cert.not_valid_after_utc <= at:
        return f"{name}'s certificate has expired by {at.isoformat()} (valid until {cert.not_valid_after_utc})"
    return None
