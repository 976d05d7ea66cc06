"""/serverkeygen (RFC 7030 §4.4): the CA makes the key pair and returns it with the certificate.

Only where the profile allows server-generated keys (``[keys] server_generation = true``), and
only over the authenticated TLS session (EST-13): the reply is multipart/mixed with the PKCS#8
key and the certificate (certs-only). The key is never logged nor stored.

A CSR asking for the key to be encrypted (RFC 7030 §4.4.1.1 DecryptKeyIdentifier, §4.4.1.2
AsymmetricDecryptKeyIdentifier) is answered 501: Tetra does not wrap returned keys in CMS, and
sending the key in clear to a client that asked for it encrypted would break what it relies on.
"""

from __future__ import annotations

from asn1crypto.core import ObjectIdentifier
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ca.cms.signed import certs_only
from ca.enrollment import EnrollmentRequest
from ca.errors import CAError
from ca.interface import CoreApi
from ca.keys import describe_public_key
from ca.profiles.model import Profile
from protocols.base import WireResponse
from protocols.est import codec
from protocols.est.errors import forbidden, not_implemented

OID_DECRYPT_KEY_ID = "1.2.840.113549.1.9.16.2.37"
OID_ASYMMETRIC_DECRYPT_KEY_ID = "1.2.840.113549.1.9.16.2.54"
_KEY_ENCRYPTION = {
    OID_DECRYPT_KEY_ID: "DecryptKeyIdentifier",
    OID_ASYMMETRIC_DECRYPT_KEY_ID: "AsymmetricDecryptKeyIdentifier",
}


def requested_key_encryption(csr: x509.CertificateSigningRequest) -> str | None:
    """The RFC 7030 §4.4.1 attribute asking for an encrypted key, if the CSR carries one."""
    try:
        oids = {attribute.oid.dotted_string for attribute in csr.attributes}
    except ValueError:  # an attribute value cryptography cannot read: look for the OIDs' DER
        tbs = csr.tbs_certrequest_bytes
        return next((name for oid, name in _KEY_ENCRYPTION.items() if _oid_der(oid) in tbs), None)
    return next((name for oid, name in _KEY_ENCRYPTION.items() if oid in oids), None)


def _oid_der(dotted: str) -> bytes:
    return bytes(ObjectIdentifier(dotted).dump())


def key_spec_for(profile: Profile, csr: x509.CertificateSigningRequest) -> str:
    """The key type the CSR's own key names, when the profile allows it; else the profile's first."""
    try:
        spec = describe_public_key(csr.public_key()).spec
    except (CAError, ValueError, TypeError):
        spec = ""
    return spec if spec in profile.key_types else sorted(profile.key_types)[0]


async def server_keygen_reply(
    core: CoreApi, profile: Profile, csr: x509.CertificateSigningRequest, request: EnrollmentRequest
) -> WireResponse:
    if not profile.server_key_generation:
        raise forbidden(f"profile {profile.name} does not allow server-generated keys")
    asked = requested_key_encryption(csr)
    if asked is not None:
        raise not_implemented(
            f"the CSR asks for the returned key to be encrypted ({asked}, RFC 7030 §4.4.2); "
            "Tetra returns server-generated keys over the TLS session only: ask without it"
        )
    issued = await core.enroll_with_server_key(await core.decide(request), key_spec_for(profile, csr))
    assert issued.private_key is not None
    key = issued.private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return codec.multipart_mixed([(codec.PKCS8, key), (codec.CERTS_ONLY, certs_only([issued.certificate]))])
