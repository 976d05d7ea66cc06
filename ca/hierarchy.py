"""Creating CA certificates: roots, intermediates, and the CA certificate profile they follow.

Roots are self-signed and may stay offline: an intermediate is signed by any
private-key object (a key file opened only for this, or a token), never by a
key the server keeps loaded.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.x509.oid import NameOID

from ca.keys import default_hash


@dataclass(frozen=True)
class CAProfile:
    """What a CA certificate may do: path length and optional name constraints."""

    common_name: str
    organization: str | None = None
    validity_days: int = 3650
    path_length: int | None = None
    permitted_dns: tuple[str, ...] = ()
    excluded_dns: tuple[str, ...] = ()
    crl_url: str = ""
    ca_issuers_url: str = ""

    def subject(self) -> x509.Name:
        attrs = []
        if self.organization:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.organization))
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, self.common_name))
        return x509.Name(attrs)


CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,  # lets the CA key sign OCSP responses itself when configured so
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _serial() -> int:
    return int.from_bytes(secrets.token_bytes(16), "big") or 1


def _base_builder(
    profile: CAProfile,
    public_key: CertificateIssuerPublicKeyTypes,
    issuer_name: x509.Name,
    now: dt.datetime,
    latest_end: dt.datetime | None = None,
) -> x509.CertificateBuilder:
    """``latest_end``: the parent's notAfter, which a CA certificate never outlives."""
    start = now.replace(microsecond=0)
    end = start + dt.timedelta(days=profile.validity_days) - dt.timedelta(seconds=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(profile.subject())
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(start)
        .not_valid_after(min(end, latest_end) if latest_end is not None else end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=profile.path_length), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if profile.permitted_dns or profile.excluded_dns:
        permitted: list[x509.GeneralName] | None = [x509.DNSName(d) for d in profile.permitted_dns] or None
        excluded: list[x509.GeneralName] | None = [x509.DNSName(d) for d in profile.excluded_dns] or None
        builder = builder.add_extension(x509.NameConstraints(permitted, excluded), critical=True)
    return builder


def create_root(
    profile: CAProfile, key: CertificateIssuerPrivateKeyTypes, now: dt.datetime | None = None
) -> x509.Certificate:
    now = now or dt.datetime.now(dt.UTC)
    public = key.public_key()
    builder = _base_builder(profile, public, profile.subject(), now)
    # pkilint wants AKI on roots too (equal to the SKI): it cannot always prove self-signature.
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
    return builder.sign(key, default_hash(public))


def create_intermediate(
    profile: CAProfile,
    public_key: CertificateIssuerPublicKeyTypes,
    parent_certificate: x509.Certificate,
    parent_key: CertificateIssuerPrivateKeyTypes,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """An issuing CA signed by its parent; never outlives the parent."""
    now = now or dt.datetime.now(dt.UTC)
    builder = _base_builder(
        profile, public_key, parent_certificate.subject, now, parent_certificate.not_valid_after_utc
    )
    try:
        ski = parent_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(parent_certificate.public_key())  # type: ignore[arg-type]
    builder = builder.add_extension(aki, critical=False)
    if profile.crl_url:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(profile.crl_url)], None, None, None)
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    if profile.ca_issuers_url:
        access = x509.AccessDescription(
            x509.oid.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(profile.ca_issuers_url)
        )
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    return builder.sign(parent_key, default_hash(parent_key.public_key()))


def fingerprint_sha256(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex(":").upper()
