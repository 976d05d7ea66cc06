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
    name: x509.Name | None = None  # the whole subject, when it is more than O and CN (a rollover keeps it)
    not_after: dt.datetime | None = None  # an end earlier than validity_days gives (RFC 4210 link certificates)

    def subject(self) -> x509.Name:
        if self.name is not None:
            return self.name
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
    limit: dt.datetime | None = None,
) -> x509.CertificateBuilder:
    """The common part of every CA certificate; it ends after validity_days, or at ``limit`` if sooner."""
    end = now.replace(microsecond=0) + dt.timedelta(days=profile.validity_days) - dt.timedelta(seconds=1)
    if limit is not None and limit < end:
        end = limit.replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(profile.subject())
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(_serial())
        .not_valid_before(now.replace(microsecond=0))
        .not_valid_after(end)
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
    limit = min(parent_certificate.not_valid_after_utc, profile.not_after or parent_certificate.not_valid_after_utc)
    builder = _base_builder(profile, public_key, parent_certificate.subject, now, limit)
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
