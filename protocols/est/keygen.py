"""/serverkeygen (RFC 7030 §4.4): the CA makes the key pair and returns it with the certificate.

Only where the profile allows server-generated keys (``[keys] server_generation = true``), and
only over the authenticated TLS session (EST-13): the reply is multipart/mixed with the PKCS#8
key and the certificate (certs-only). The key is never logged nor stored.

A CSR carrying AsymmetricDecryptKeyIdentifier (RFC 7030 §4.4.1.2: the subjectKeyIdentifier of
the client's key-transport certificate) gets the key encrypted to that certificate as well
(§4.4.2): the key part is then ``application/pkcs7-mime; smime-type=server-generated-key``, an
EnvelopedData holding a SignedData by the RA (ca/cms/keypackage.py). The only certificate the
server knows the client holds is the TLS client certificate of the request, so the identifier
must name it (else 400, before anything is issued); it must have an RSA key (KeyTransRecipientInfo;
key agreement for EC keys is not built: 501).

DecryptKeyIdentifier (§4.4.1.1) names a symmetric key shared in advance; Tetra holds none, so
that request is answered 501 rather than sending in clear a key the client asked for encrypted.
"""

from __future__ import annotations

from asn1crypto import csr as asn1_csr
from asn1crypto.core import Any, ObjectIdentifier, OctetString, SetOf
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ca.cms.keypackage import encrypted_key_package
from ca.cms.signed import certs_only
from ca.enrollment import EnrollmentRequest
from ca.errors import CAError
from ca.interface import CoreApi, RegistrationAuthority
from ca.keys import describe_public_key
from ca.profiles.model import Profile
from protocols.base import WireResponse
from protocols.est import codec
from protocols.est.errors import bad_request, forbidden, not_implemented

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


class _AnyValues(SetOf):  # type: ignore[misc]
    _child_spec = Any


def requested_key_identifier(csr: x509.CertificateSigningRequest) -> bytes | None:
    """The AsymmetricDecryptKeyIdentifier's value (an OCTET STRING, §4.4.1.2), if the CSR has one."""
    try:
        request = asn1_csr.CertificationRequest.load(csr.public_bytes(Encoding.DER))
        for attribute in request["certification_request_info"]["attributes"]:
            if attribute["type"].dotted == OID_ASYMMETRIC_DECRYPT_KEY_ID:
                values = _AnyValues.load(attribute["values"].dump())  # asn1crypto knows not the type
                if len(values) != 1:
                    raise bad_request("AsymmetricDecryptKeyIdentifier must have exactly one value")
                return bytes(OctetString.load(values[0].dump()).native)
    except ValueError:
        raise bad_request("AsymmetricDecryptKeyIdentifier must be an OCTET STRING (RFC 7030 §4.4.1.2)") from None
    return None


def key_transport_recipient(identifier: bytes, client_certificate: x509.Certificate | None) -> x509.Certificate:
    """The client's certificate the identifier names: the TLS client certificate, by its SKI."""
    ski = None
    if client_certificate is not None:
        try:
            ski = client_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            pass
    if client_certificate is None or ski != identifier:
        raise bad_request(
            "AsymmetricDecryptKeyIdentifier names no certificate the server knows: it must be the "
            "subjectKeyIdentifier of the TLS client certificate of this request (RFC 7030 §4.4.1.2)"
        )
    if not isinstance(client_certificate.public_key(), rsa.RSAPublicKey):
        raise not_implemented(
            "the certificate AsymmetricDecryptKeyIdentifier names has no RSA key; Tetra encrypts "
            "server-generated keys by RSA key transport only (RFC 7030 §4.4.2 KeyTransRecipientInfo)"
        )
    try:
        usage = client_certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.key_encipherment:  # RFC 5280 §4.2.1.3: the key may not wrap keys
        raise bad_request("the certificate AsymmetricDecryptKeyIdentifier names does not allow keyEncipherment")
    return client_certificate


def encryption_target(
    core: CoreApi, csr: x509.CertificateSigningRequest, client_certificate: x509.Certificate | None
) -> tuple[x509.Certificate, RegistrationAuthority] | None:
    """Who the key is encrypted to and who signs it, when the CSR asks for encryption (§4.4.1)."""
    asked = requested_key_encryption(csr)
    if asked is None:
        return None
    if asked == _KEY_ENCRYPTION[OID_DECRYPT_KEY_ID]:
        raise not_implemented(
            "the CSR asks for the returned key to be encrypted with a pre-shared symmetric key "
            "(DecryptKeyIdentifier, RFC 7030 §4.4.1.1); Tetra holds no such keys: ask with "
            "AsymmetricDecryptKeyIdentifier or without encryption"
        )
    identifier = requested_key_identifier(csr)
    if identifier is None:  # the OID was seen in the DER but no such attribute could be read
        raise bad_request("AsymmetricDecryptKeyIdentifier cannot be read (RFC 7030 §4.4.1.2)")
    recipient = key_transport_recipient(identifier, client_certificate)
    try:
        ra = core.ra()
    except CAError as exc:
        raise not_implemented(f"no RA can sign the encrypted key: {exc.public_detail()}") from None
    return recipient, ra


async def server_keygen_reply(
    core: CoreApi,
    profile: Profile,
    csr: x509.CertificateSigningRequest,
    request: EnrollmentRequest,
    client_certificate: x509.Certificate | None = None,
) -> WireResponse:
    """Everything that can refuse the request is checked before the key is made and issued."""
    if not profile.server_key_generation:
        raise forbidden(f"profile {profile.name} does not allow server-generated keys")
    target = encryption_target(core, csr, client_certificate)
    issued = await core.enroll_with_server_key(await core.decide(request), key_spec_for(profile, csr))
    assert issued.private_key is not None
    key = issued.private_key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    key_part = (codec.PKCS8, key)
    if target is not None:
        recipient, ra = target
        key_part = (codec.SERVER_GENERATED_KEY, await encrypted_key_package(key, recipient, ra.signer, ra.certificate))
    return codec.multipart_mixed([key_part, (codec.CERTS_ONLY, certs_only([issued.certificate]))])
