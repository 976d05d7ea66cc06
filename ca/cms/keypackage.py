"""An asymmetric key package for one recipient (RFC 5958 §4, as RFC 7030 §4.4.2 uses it).

EST /serverkeygen returns a server-generated key encrypted to the client when the CSR asks
for it. RFC 7030 §4.4.2 places the key inside a CMS SignedData signed by the party that
generated it, then places that SignedData inside an EnvelopedData for the client (RFC 5958
§4's order: sign, then encrypt). The signed content is an AsymmetricKeyPackage
(``SEQUENCE OF OneAsymmetricKey``, content type id-ct-KP-aKeyPackage, RFC 5958 §2); a PKCS#8
PrivateKeyInfo is a version-1 OneAsymmetricKey, so the package is that DER in a SEQUENCE.
"""

from __future__ import annotations

from asn1crypto import cms
from cryptography import x509

from ca.cms._asn1 import OID_SIGNED_DATA
from ca.cms.enveloped import envelope
from ca.cms.signed import sign_data
from ca.der import encode_length
from ca.signers.base import Signer

OID_ASYMMETRIC_KEY_PACKAGE = "2.16.840.1.101.2.1.2.78.5"  # id-ct-KP-aKeyPackage (RFC 5958 §2)


def asymmetric_key_package(pkcs8: bytes) -> bytes:
    """AsymmetricKeyPackage DER holding one OneAsymmetricKey (a PKCS#8 PrivateKeyInfo)."""
    return b"\x30" + encode_length(len(pkcs8)) + pkcs8


async def encrypted_key_package(
    pkcs8: bytes, recipient: x509.Certificate, signer: Signer, signer_certificate: x509.Certificate
) -> bytes:
    """EnvelopedData (ContentInfo DER) to ``recipient``'s RSA key, holding a SignedData by
    ``signer`` over the key package. The encrypted content type is id-signedData and the
    encrypted octets are the SignedData itself (RFC 5652 §6.1: the content, not a ContentInfo).
    ValueError when ``recipient`` has no RSA key (only KeyTransRecipientInfo is built)."""
    signed = await sign_data(
        signer, signer_certificate, asymmetric_key_package(pkcs8), content_type=OID_ASYMMETRIC_KEY_PACKAGE
    )
    inner = bytes(cms.ContentInfo.load(signed)["content"].untag().dump(force=True))  # without the [0] EXPLICIT
    return envelope(inner, recipient, content_type=OID_SIGNED_DATA)
