"""An Apple configuration profile (`.mobileconfig`) that enrols a device over SCEP under one
Tetra profile: a `com.apple.security.scep` payload inside a `Configuration` payload, written as
an XML property list by plistlib.

The payload names the SCEP URL of the profile, the key Tetra expects (RSA of the profile's
size, the key usage its certificates get) and pins the issuing CA by `CAFingerprint`: the
SHA-256 of its DER certificate, as data. The challenge is left empty for the MDM to fill in
(Intune and Jamf put a one-time challenge there per device) unless the operator gives one.
UUIDs are derived from the profile and the CA, so downloading again yields the same profile
and a device replaces rather than duplicates it.
"""

from __future__ import annotations

import plistlib
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ca.profiles.model import Profile

CONTENT_TYPE = "application/x-apple-aspen-config"
_NAMESPACE = uuid.UUID("6f1c2f7e-4b0e-5d5a-9a57-7465747261ca")  # Tetra's, for uuid5
SIGNING, ENCRYPTION = 1, 4  # Apple's "Key Usage" bits
DEFAULT_KEY_SIZE = 2048


@dataclass(frozen=True)
class ScepEnrolment:
    profile: Profile
    url: str  # the profile's SCEP URL, as devices reach it
    ca_name: str  # the issuing CA generation, also the payload's Name
    ca_certificate: x509.Certificate
    challenge: str = ""  # "" leaves it for the MDM


def key_size(profile: Profile) -> int:
    """The RSA size the profile accepts: 2048 if allowed, else the smallest RSA size it lists."""
    sizes = sorted(int(k.split("-", 1)[1]) for k in profile.key_types if k.startswith("rsa-") and k[4:].isdigit())
    if not sizes or DEFAULT_KEY_SIZE in sizes:
        return DEFAULT_KEY_SIZE
    return sizes[0]


def key_usage(profile: Profile) -> int:
    bits = SIGNING if "digital_signature" in profile.key_usage else 0
    if profile.rsa_key_encipherment or "key_encipherment" in profile.key_usage:
        bits |= ENCRYPTION
    return bits or SIGNING


def filename(profile: Profile) -> str:
    return f"{profile.name}.mobileconfig"


def build(enrolment: ScepEnrolment) -> bytes:
    profile, cert = enrolment.profile, enrolment.ca_certificate
    fingerprint = cert.fingerprint(hashes.SHA256())
    identity = f"{profile.name}/{fingerprint.hex()}"
    scep: dict[str, object] = {
        "URL": enrolment.url,
        "Name": enrolment.ca_name,
        "Challenge": enrolment.challenge,
        "Keysize": key_size(profile),
        "Key Type": "RSA",
        "Key Usage": key_usage(profile),
        "CAFingerprint": fingerprint,
        "Retries": 3,
        "RetryDelay": 10,
    }
    payload = {
        "PayloadType": "com.apple.security.scep",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"tetra.scep.{profile.name}.enrolment",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, f"scep:{identity}")).upper(),
        "PayloadDisplayName": f"SCEP enrolment ({profile.name})",
        "PayloadDescription": f"Requests a certificate from {enrolment.ca_name} under profile {profile.name}",
        "PayloadContent": scep,
    }
    document = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"tetra.scep.{profile.name}",
        "PayloadUUID": str(uuid.uuid5(_NAMESPACE, f"configuration:{identity}")).upper(),
        "PayloadDisplayName": f"Tetra CA: {profile.name} certificate",
        "PayloadContent": [payload],
    }
    return plistlib.dumps(document, fmt=plistlib.FMT_XML, sort_keys=True)
