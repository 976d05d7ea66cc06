"""CMS (RFC 5652) for the protocols after ACME: SCEP (RFC 8894), EST (RFC 7030) and CMS-wrapped replies.

Built on asn1crypto for the structures and cryptography for the primitives; keys are
always reached through a `Signer`, so HSM-held RA and CA keys work. Modules:

- `signed`: certs-only bags and SignedData signed by a Signer;
- `verify`: parsing and verifying a peer's SignedData (bounded; every refusal a CAError);
- `enveloped`: EnvelopedData to an RSA recipient, and decryption with a DecryptingSigner;
- `scep`: SCEP's authenticated attributes (OIDs, build, read);
- `keypackage`: a server-generated key signed, then enveloped to its owner (EST serverkeygen).
"""

from __future__ import annotations

from ca.cms._asn1 import MAX_CMS_BYTES, OID_DATA, OID_ENVELOPED_DATA, OID_SIGNED_DATA
from ca.cms.enveloped import ContentCipher, decrypt_enveloped, envelope
from ca.cms.signed import SignedAttribute, certs_only, sign_data
from ca.cms.verify import SignedMessage, SignerId, parse_certs_only, parse_signed_data

__all__ = [
    "MAX_CMS_BYTES",
    "OID_DATA",
    "OID_ENVELOPED_DATA",
    "OID_SIGNED_DATA",
    "ContentCipher",
    "SignedAttribute",
    "SignedMessage",
    "SignerId",
    "certs_only",
    "decrypt_enveloped",
    "envelope",
    "parse_certs_only",
    "parse_signed_data",
    "sign_data",
]
