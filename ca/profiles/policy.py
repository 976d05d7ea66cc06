"""Profile policy: checks that refuse, then modifiers that shape the `CertificateTemplate`.

Every refusal names the profile and the rule ("profile tls-server: SAN type ip
not allowed") so each protocol can pass the reason on in its own error channel.
The template is built from the profile: names and key come from the request
where the profile allows them; the request's extensions are never copied.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtensionOID, NameOID, ObjectIdentifier

from ca.enrollment import CertificateRef, EnrollmentKind, EnrollmentRequest, Identifier
from ca.errors import CAError, FailureReason, PolicyViolation
from ca.keys import describe_public_key
from ca.profiles.model import Profile

# CA/Browser Forum TLS BR 6.3.2: maximum validity by the date of issuance.
CABF_MAX_DAYS: tuple[tuple[dt.datetime, int], ...] = (
    (dt.datetime(2029, 3, 15, tzinfo=dt.UTC), 47),
    (dt.datetime(2027, 3, 15, tzinfo=dt.UTC), 100),
    (dt.datetime(2026, 3, 15, tzinfo=dt.UTC), 200),
)
CABF_DEFAULT_MAX_DAYS = 398

_ATTRIBUTE_OIDS: dict[str, ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "emailAddress": NameOID.EMAIL_ADDRESS,
}
# Extensions a CSR may ask for that we understand (and rebuild from the profile).
_KNOWN_REQUEST_EXTENSIONS = {
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.SUBJECT_KEY_IDENTIFIER,
    ExtensionOID.TLS_FEATURE,
}
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True)
class CertificateTemplate:
    """Exactly what will be signed: the output of policy and the input of the issuer."""

    profile: Profile
    issuer_name: str
    subject: x509.Name
    public_key: CertificatePublicKeyTypes
    subject_alt_names: tuple[Identifier, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    key_usage: x509.KeyUsage
    extended_key_usage: tuple[ObjectIdentifier, ...]
    kind: EnrollmentKind
    replaces: CertificateRef | None

    @property
    def validity_days(self) -> float:
        """Inclusive length in days (RFC 5280 §4.1.2.5: both ends belong to the period)."""
        seconds = (self.not_after - self.not_before).total_seconds() + 1
        return seconds / 86400


def _refuse(profile: Profile, rule: str, reason: FailureReason = FailureReason.REJECTED_BY_POLICY) -> CAError:
    return PolicyViolation(f"profile {profile.name}: {rule}", reason)


def cabf_max_days(at: dt.datetime) -> int:
    for start, days in CABF_MAX_DAYS:
        if at >= start:
            return days
    return CABF_DEFAULT_MAX_DAYS


def check_key(profile: Profile, key: CertificatePublicKeyTypes) -> None:
    """Key type and size from the profile's list; RSA exponent 65537 only (CORE-07)."""
    try:
        desc = describe_public_key(key)
    except CAError as exc:
        raise _refuse(profile, exc.detail, FailureReason.BAD_PUBLIC_KEY) from None
    if desc.spec not in profile.key_types:
        allowed = ", ".join(sorted(profile.key_types))
        raise _refuse(profile, f"key type {desc.spec} not allowed (allowed: {allowed})", FailureReason.BAD_PUBLIC_KEY)
    if isinstance(key, rsa.RSAPublicKey) and key.public_numbers().e != 65537:
        raise _refuse(
            profile,
            f"RSA public exponent {key.public_numbers().e} not allowed (65537 only)",
            FailureReason.BAD_PUBLIC_KEY,
        )


def _check_dns(profile: Profile, name: str) -> None:
    if name != name.lower():
        raise _refuse(profile, f"DNS name {name!r} must be lowercase")
    if name.endswith(".") or len(name) > 253 or not name:
        raise _refuse(profile, f"DNS name {name!r} is not a valid host name")
    labels = name.split(".")
    if labels[0] == "*":
        if not profile.allow_wildcards:
            raise _refuse(profile, f"wildcard name {name!r} not allowed")
        labels = labels[1:]
        if len(labels) < 2:
            raise _refuse(profile, f"wildcard name {name!r} covers a top-level domain")
    for label in labels:
        if not _DNS_LABEL.match(label):
            raise _refuse(profile, f"DNS name {name!r} has an invalid label {label!r}")
    if len(labels) < 2 and labels and labels[0] != "localhost":
        raise _refuse(profile, f"DNS name {name!r} is not fully qualified")


def _check_one_name(profile: Profile, ident: Identifier) -> None:
    if ident.type not in profile.san_types:
        raise _refuse(profile, f"SAN type {ident.type} not allowed")
    if ident.type == "dns":
        _check_dns(profile, ident.value)
    elif ident.type == "ip":
        try:
            addr = ipaddress.ip_address(ident.value)
        except ValueError:
            raise _refuse(profile, f"{ident.value!r} is not an IP address") from None
        rule = profile.names.get("ip")
        if rule:
            if rule.allow_networks and not any(addr in n for n in rule.allow_networks):
                raise _refuse(profile, f"IP address {addr} is not in an allowed network")
            if any(addr in n for n in rule.deny_networks):
                raise _refuse(profile, f"IP address {addr} is in a denied network")
        return
    elif ident.type == "email" and not _EMAIL.match(ident.value):
        raise _refuse(profile, f"{ident.value!r} is not an email address")
    elif ident.type == "uri" and ":" not in ident.value:
        raise _refuse(profile, f"{ident.value!r} is not an absolute URI")
    rule = profile.names.get(ident.type)
    if rule:
        if rule.allow and not any(p.fullmatch(ident.value) for p in rule.allow):
            raise _refuse(profile, f"{ident.type} name {ident.value!r} matches no allowed pattern")
        for pattern in rule.deny:
            if pattern.fullmatch(ident.value):
                raise _refuse(profile, f"{ident.type} name {ident.value!r} is denied ({pattern.pattern})")


def check_names(profile: Profile, names: tuple[Identifier, ...]) -> tuple[Identifier, ...]:
    """SAN count, types and patterns; duplicates dropped, order kept."""
    if len(names) > profile.max_sans:
        raise _refuse(profile, f"{len(names)} subjectAltNames, over the limit of {profile.max_sans}")
    if profile.require_san and not names:
        raise _refuse(profile, "at least one subjectAltName is required")
    unique = tuple(dict.fromkeys(names))
    for ident in unique:
        _check_one_name(profile, ident)
    return unique


def check_requested_extensions(profile: Profile, request: EnrollmentRequest) -> None:
    """An unknown critical extension cannot be honoured and must not be ignored (CORE-09)."""
    for ext in request.requested_extensions:
        if ext.critical and ext.oid not in _KNOWN_REQUEST_EXTENSIONS:
            raise _refuse(profile, f"requested critical extension {ext.oid.dotted_string} is not supported")


def build_subject(profile: Profile, request: EnrollmentRequest, names: tuple[Identifier, ...]) -> x509.Name:
    keep = {_ATTRIBUTE_OIDS[a] for a in profile.subject_attributes if a != "CN"}
    attrs = [a for a in request.subject if a.oid in keep]
    cns = request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    requested_cn = str(cns[0].value) if cns else None
    cn: str | None = None
    if profile.common_name == "first-san":
        name_values = [n.value for n in names if n.type in ("dns", "ip")]
        if requested_cn is not None and requested_cn not in name_values:
            raise _refuse(profile, f"common name {requested_cn!r} is not among the subjectAltNames")
        cn = requested_cn or (name_values[0] if name_values else None)
    elif profile.common_name == "from-request":
        if "CN" not in profile.subject_attributes and requested_cn is not None:
            raise _refuse(profile, "common name not allowed")
        cn = requested_cn
    if cn is not None:
        if len(cn) > 64:
            raise _refuse(profile, "common name longer than 64 characters")
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    if not attrs and not names:
        raise _refuse(profile, "the certificate would have neither a subject nor a subjectAltName")
    return x509.Name(attrs)


def choose_validity(
    profile: Profile, request: EnrollmentRequest, now: dt.datetime, issuer_not_after: dt.datetime
) -> tuple[dt.datetime, dt.datetime]:
    """notBefore/notAfter within the profile's limits; lengths are inclusive (CORE-06)."""
    not_before = (now - dt.timedelta(seconds=profile.backdate_seconds)).replace(microsecond=0)
    max_days = profile.max_days
    if profile.cabf_max_validity:
        max_days = min(max_days, cabf_max_days(not_before))
    if request.not_before and profile.allow_requested_validity:
        if request.not_before > now + dt.timedelta(days=1):
            raise _refuse(profile, "requested notBefore is more than a day in the future", FailureReason.BAD_TIME)
        not_before = max(request.not_before.replace(microsecond=0), not_before)
    if request.not_after and profile.allow_requested_validity:
        not_after = request.not_after.replace(microsecond=0)
        if not_after <= not_before:
            raise _refuse(profile, "requested notAfter is before notBefore", FailureReason.BAD_TIME)
        if (not_after - not_before).total_seconds() + 1 > max_days * 86400:
            raise _refuse(profile, f"requested validity is longer than {max_days} days", FailureReason.BAD_TIME)
    else:
        days = min(profile.default_days, max_days)
        not_after = not_before + dt.timedelta(days=days) - dt.timedelta(seconds=1)
    # A certificate never outlives its issuer: cut it at the issuer's notAfter.
    return not_before, min(not_after, issuer_not_after)


def key_usage_for(profile: Profile, key: CertificatePublicKeyTypes) -> x509.KeyUsage:
    usages = set(profile.key_usage)
    if profile.rsa_key_encipherment and isinstance(key, rsa.RSAPublicKey):
        usages.add("key_encipherment")
    return x509.KeyUsage(
        digital_signature="digital_signature" in usages,
        content_commitment="content_commitment" in usages,
        key_encipherment="key_encipherment" in usages,
        data_encipherment="data_encipherment" in usages,
        key_agreement="key_agreement" in usages,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def build_template(
    profile: Profile,
    request: EnrollmentRequest,
    *,
    issuer_name: str,
    issuer_not_after: dt.datetime,
    now: dt.datetime,
) -> CertificateTemplate:
    """Run every check, then shape the certificate. Raises PolicyViolation naming the rule."""
    if request.protocol not in profile.protocols:
        raise _refuse(profile, f"protocol {request.protocol} not allowed")
    if request.requester.method not in profile.auth_methods:
        raise _refuse(
            profile, f"authentication method {request.requester.method.value} not allowed", FailureReason.UNAUTHORIZED
        )
    check_key(profile, request.public_key)
    check_requested_extensions(profile, request)
    names = check_names(profile, request.subject_alt_names)
    subject = build_subject(profile, request, names)
    not_before, not_after = choose_validity(profile, request, now, issuer_not_after)
    return CertificateTemplate(
        profile=profile,
        issuer_name=issuer_name,
        subject=subject,
        public_key=request.public_key,
        subject_alt_names=names,
        not_before=not_before,
        not_after=not_after,
        key_usage=key_usage_for(profile, request.public_key),
        extended_key_usage=profile.extended_key_usage,
        kind=request.kind,
        replaces=request.replaces,
    )
