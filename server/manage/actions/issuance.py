"""New certificates through the management plane: a request (a CSR, or a key the CA makes),
a renewal of one the CA issued (same names, same key, same profile, lineage `replaces`), a
reissue (a renewal, then the old one revoked as superseded).

Such a request is the acting user's, not the CA operator's own: on a profile with
`approval = "manual"` it waits in the queue like any protocol's, under its team (the
requester's, or the one it names), and a profile limited to `teams` takes it only from those.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12
from cryptography.hazmat.primitives.serialization.pkcs12 import PKCS12PrivateKeyTypes

from ca.csr import enrollment_from_csr, parse_csr
from ca.enrollment import (
    AuthMethod,
    CertificateRef,
    EnrollmentKind,
    EnrollmentOutcome,
    EnrollmentRequest,
    Identifier,
    InventoryFields,
    Issued,
    Requester,
)
from ca.errors import BadRequest, PolicyViolation
from ca.keys import generate_private_key
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.profiles.model import Profile
from ca.service import CertificateAuthority
from server.manage.actions.access import own_team, require
from server.manage.actions.certificates import ledger_record, visible_record
from server.manage.actions.errors import Conflict, NotForTeam

PROTOCOL = "api"  # how profiles name the management plane (`protocols = [...]`)


@dataclass(frozen=True)
class Order:
    """A new certificate: either `csr` (PEM), or `key_type` with `names` (and `subject`) for a
    key the CA makes and hands back once."""

    profile: str
    csr: bytes | None = None
    key_type: str | None = None
    subject: str | None = None  # RFC 4514, e.g. "CN=www.example.com,O=Example"
    names: tuple[str, ...] = ()  # "www.example.com", "192.0.2.1", or typed: "email:ops@example.com"
    team: str | None = None
    owner: str | None = None
    application: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class Requested:
    outcome: EnrollmentOutcome  # Issued, or Pending (held for approval)
    private_key: CertificateIssuerPrivateKeyTypes | None = None  # the CA-made key, never stored


async def request_certificate(ca: CertificateAuthority, principal: Principal, order: Order) -> Requested:
    require(principal, Permission.CERTIFICATES_REQUEST)
    team = own_team(principal, order.team)
    profile = ca.profile(order.profile)
    _check_team(profile, team)
    requester = Requester(principal.actor, AuthMethod.OPERATOR)
    inventory = InventoryFields(order.owner, team, order.application, order.location)
    if order.csr is not None:
        request = enrollment_from_csr(
            parse_csr(order.csr), protocol=PROTOCOL, profile_name=profile.name, requester=requester, inventory=inventory
        )
        return Requested(await ca.enroll(await ca.decide(request)))
    return await _with_server_key(ca, profile, order, requester, inventory)


async def renew(ca: CertificateAuthority, principal: Principal, inventory_id: int) -> Requested:
    """The same names, key and profile again, replacing the old certificate (which stays valid)."""
    require(principal, Permission.CERTIFICATES_RENEW)
    record = await visible_record(ca, principal, inventory_id)
    issued = await ledger_record(ca, record)
    if issued.status != "issued" or issued.der is None:
        raise Conflict(f"certificate {record.id} is {issued.status}: request a new one instead")
    profile = ca.profile(issued.profile)
    _check_team(profile, record.team)
    certificate = x509.load_der_x509_certificate(issued.der)
    request = EnrollmentRequest(
        protocol=PROTOCOL,
        profile_name=profile.name,
        public_key=certificate.public_key(),
        subject=certificate.subject,
        subject_alt_names=tuple(Identifier.parse(text) for text in issued.sans),
        requester=Requester(principal.actor, AuthMethod.OPERATOR),
        kind=EnrollmentKind.RENEW,
        replaces=CertificateRef(issued.issuer, issued.serial),
        inventory=InventoryFields(record.owner, record.team, record.application, record.declared_location),
    )
    return Requested(await ca.enroll(await ca.decide(request, replaced=issued)))


async def reissue(ca: CertificateAuthority, principal: Principal, inventory_id: int) -> Requested:
    """A renewal, then the old certificate revoked as superseded. Refused on a profile that
    holds requests: the old one would be revoked before its successor exists."""
    require(principal, Permission.CERTIFICATES_RENEW)
    record = await visible_record(ca, principal, inventory_id)
    issued = await ledger_record(ca, record)
    if ca.profile(issued.profile).approval == "manual":
        raise Conflict(f"profile {issued.profile} holds requests for approval: renew, and revoke once it is issued")
    renewed = await renew(ca, principal, inventory_id)
    await ca.revoke(issued.issuer, issued.serial, "superseded", requester=principal.actor)
    return renewed


def _check_team(profile: Profile, team: str | None) -> None:
    if profile.teams and team not in profile.teams:
        raise NotForTeam(f"profile {profile.name} is for the teams {', '.join(sorted(profile.teams))}")


async def _with_server_key(
    ca: CertificateAuthority, profile: Profile, order: Order, requester: Requester, inventory: InventoryFields
) -> Requested:
    key_type = order.key_type or ""
    if not profile.server_key_generation:
        raise PolicyViolation(f"profile {profile.name} does not let the CA make keys (keys.server_generation)")
    if profile.approval == "manual":
        raise PolicyViolation(
            f"profile {profile.name} holds requests: a key the CA makes is never stored, so it cannot wait"
        )
    if key_type not in profile.key_types:
        raise PolicyViolation(f"profile {profile.name} does not allow {key_type} keys")
    try:
        subject = x509.Name.from_rfc4514_string(order.subject or "")
    except ValueError:
        raise BadRequest("subject is not an RFC 4514 name (CN=www.example.com,O=Example)") from None
    key = generate_private_key(key_type)
    request = EnrollmentRequest(
        protocol=PROTOCOL,
        profile_name=profile.name,
        public_key=key.public_key(),
        subject=subject,
        subject_alt_names=tuple(_identifier(name) for name in order.names),
        requester=requester,
        inventory=inventory,
    )
    outcome = await ca.enroll(await ca.decide(request))
    assert isinstance(outcome, Issued)  # the profile approves automatically (checked above)
    return Requested(outcome, key)


def _identifier(text: str) -> Identifier:
    """A name as typed: an IP address, "type:value", or else a DNS name."""
    try:
        return Identifier("ip", str(ipaddress.ip_address(text)))
    except ValueError:
        pass
    kind, sep, value = text.partition(":")
    if sep and kind == "ip":
        raise BadRequest(f"{text[:80]!r} is not an IP address")
    if sep and kind in ("dns", "email", "uri") and value:
        return Identifier(kind, value)
    if "@" in text:
        return Identifier("email", text)
    return Identifier("dns", text)


def pkcs12_bundle(requested: Requested, passphrase: str) -> bytes:
    """The CA-made key with its certificate and chain, as PKCS#12 encrypted under ``passphrase``
    (AES-256 and PBKDF2: cryptography's best available). Made once, for the one answer."""
    outcome = requested.outcome
    if requested.private_key is None or not isinstance(outcome, Issued):
        raise Conflict("only a certificate issued with a key the CA made has a PKCS#12")
    key = cast(PKCS12PrivateKeyTypes, requested.private_key)  # KEY_SPECS are all PKCS#12 key types
    encryption = BestAvailableEncryption(passphrase.encode())
    return pkcs12.serialize_key_and_certificates(b"tetra", key, outcome.certificate, list(outcome.chain), encryption)
