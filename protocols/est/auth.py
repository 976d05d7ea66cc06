"""Who is asking (RFC 7030 §3.2.3, §3.3): a TLS client certificate or HTTP Basic, per profile.

- A certificate Tetra issued (not expired, not revoked: `CoreApi.authenticate_certificate`)
  authenticates any operation, for the names it carries only; it is the only proof
  simplereenroll accepts.
- A certificate issued directly by one of the profile's external trust anchors (a device
  maker's CA: IDevID bootstrap) authenticates simpleenroll and serverkeygen under that profile
  only. The TLS listener asks for client certificates with those anchors (server/tls.py).
- HTTP Basic: a user of `tetra est user add`, over HTTPS only, bound to a profile or not.

Each method must also be among the profile's ``auth_methods``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from ca.enrollment import AuthMethod, Identifier, Requester
from ca.errors import CAError
from ca.interface import CoreApi
from ca.profiles.model import Profile
from ca.records import CertificateRecord
from protocols.base import WireRequest
from protocols.est.config import EstProfileSettings
from protocols.est.errors import EstError, forbidden, unauthenticated
from protocols.lockout import FailedAttempts

PROTOCOL = "est"


@dataclass(frozen=True)
class Client:
    requester: Requester
    certificate: x509.Certificate | None = None
    record: CertificateRecord | None = None  # set when the TLS client certificate is one of ours


def _allowed(profile: Profile, method: AuthMethod) -> None:
    if method not in profile.auth_methods:
        raise forbidden(f"profile {profile.name} does not accept {method.value} authentication")


def anchored(certificate: x509.Certificate, anchors: tuple[x509.Certificate, ...], now: dt.datetime) -> bool:
    """Whether an external anchor issued ``certificate`` directly and it is valid now."""
    if not (certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc):
        return False
    for anchor in anchors:
        if anchor.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(anchor)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return True
    return False


async def by_certificate(core: CoreApi, der: bytes, profile: Profile, settings: EstProfileSettings) -> Client:
    try:
        certificate = x509.load_der_x509_certificate(der)
    except ValueError:
        raise forbidden("the TLS client certificate cannot be parsed") from None
    _allowed(profile, AuthMethod.CLIENT_CERTIFICATE)
    try:
        record = await core.authenticate_certificate(certificate)
    except CAError as exc:
        if settings.trust_anchors and anchored(certificate, settings.trust_anchors, core.clock.now()):
            subject = certificate.subject.rfc4514_string()[:200]
            return Client(Requester(f"est-anchor:{subject}", AuthMethod.CLIENT_CERTIFICATE), certificate)
        raise forbidden(f"TLS client certificate refused for profile {profile.name}: {exc.public_detail()}") from None
    # A certificate of ours vouches only for the names it carries: the device of dev1 may
    # enrol another key for dev1, never a certificate for dev2 (SEC-01).
    proven = frozenset(Identifier.parse(name) for name in record.sans)
    requester = Requester(f"est-cert:{record.issuer}/{record.serial_hex}", AuthMethod.CLIENT_CERTIFICATE, proven)
    return Client(requester, certificate, record)


def basic_credentials(header: str) -> tuple[str, str]:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        raise unauthenticated("authentication required: a TLS client certificate or HTTP Basic")
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        raise unauthenticated("the Basic credentials are not base64 of user:password") from None
    if not sep or not user:
        raise unauthenticated("the Basic credentials are not base64 of user:password")
    return user, password


def check_not_braked(guard: FailedAttempts, address: str) -> None:
    """429 with Retry-After for an address that used up its wrong passwords for now (EST-03)."""
    wait = guard.wait(address)
    if wait:
        raise EstError(
            429, f"too many wrong passwords from this address; retry after {wait} s", {"Retry-After": str(wait)}
        )


async def by_password(core: CoreApi, header: str, profile: Profile, guard: FailedAttempts, address: str) -> Client:
    user, password = basic_credentials(header)
    _allowed(profile, AuthMethod.PASSWORD)
    check_not_braked(guard, address)
    credential = await core.credentials.verify_password(PROTOCOL, user, password)
    if credential is None:
        guard.failed(address)
        raise unauthenticated("wrong user name or password")
    guard.succeeded(address)
    if credential.profile is not None and credential.profile != profile.name:
        raise forbidden(f"EST user {user} may enroll under profile {credential.profile} only")
    proven = frozenset(Identifier.parse(i) for i in credential.identities) if credential.identities else None
    return Client(Requester(f"est-user:{user}", AuthMethod.PASSWORD, proven))


async def authenticate(
    core: CoreApi, req: WireRequest, profile: Profile, settings: EstProfileSettings, guard: FailedAttempts
) -> Client:
    """The client's proof, or the EstError that refuses it. Credentials never cross plain HTTP."""
    if req.scheme != "https":
        raise forbidden("EST enrolment needs HTTPS: credentials and keys never travel over plain HTTP")
    if req.peer_certificate_der:
        return await by_certificate(core, req.peer_certificate_der, profile, settings)
    header = req.headers.get("Authorization")
    if header is None:
        raise unauthenticated("authentication required: a TLS client certificate or HTTP Basic")
    return await by_password(core, header, profile, guard, req.remote)


__all__ = ["Client", "EstError", "authenticate"]
