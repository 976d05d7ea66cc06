"""Checking and making a PKIMessage's protection (RFC 9810 §5.1.3): MAC or signature.

MAC: the scheme is checked by `protocols.cmp.pbm` before any derivation, the HMAC is
compared in constant time, and the derived key is handed back so that the reply is
protected with the same scheme and secret without deriving twice. Signature: the sender's
certificate key verifies through `ca.sigalg.verify_signature` (one algorithm table for the
whole CA), and replies are signed by a `Signer`, so an HSM-held CMP key works. Which
certificate to trust, and which secret belongs to a senderKID, is the caller's decision.
Every refusal is a `CmpFailure`: badMessageCheck for a protection that does not verify
(CMP-01, CMP-02), badAlg for an algorithm we do not accept (CMP-03).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ca.errors import CAError, FailureReason, SignerUnavailable
from ca.interface import Signer
from ca.sigalg import (
    ECDSA_WITH,
    ED448,
    ED25519,
    HASH_OIDS,
    HASHES,
    RSA_WITH,
    sign_bytes,
    verify_bytes,
    verify_signature,
)
from protocols.cmp.config import MacLimits
from protocols.cmp.der import algorithm_identifier
from protocols.cmp.errors import CmpFailure, FailInfo, bad_message_check
from protocols.cmp.message import PkiMessage
from protocols.cmp.pbm import DERIVATION, PASSWORD_BASED_MAC, PBMAC1, Derivation, mac_scheme

MAC_ALGORITHMS = (PASSWORD_BASED_MAC, PBMAC1)


@dataclass(frozen=True)
class MacKey:
    """A derived MAC key and the protectionAlg (DER) it belongs to."""

    algorithm: bytes
    key: bytes
    mac_hash: str

    def mac(self, protected_part: bytes) -> bytes:
        return hmac.new(self.key, protected_part, self.mac_hash).digest()


def _protection_alg(message: PkiMessage) -> tuple[str, bytes]:
    algorithm = message.protection_alg
    if algorithm is None or message.protection is None or message.protection_alg_der is None:
        raise bad_message_check("the message is not protected")  # CMP-01
    return str(algorithm["algorithm"]), message.protection_alg_der


def is_mac_protected(message: PkiMessage) -> bool:
    """Whether protectionAlg names a MAC (so the caller looks up a secret by senderKID)."""
    algorithm = message.protection_alg
    return algorithm is not None and str(algorithm["algorithm"]) in MAC_ALGORITHMS


def verify_mac(message: PkiMessage, secret: bytes, limits: MacLimits, derivation: Derivation = DERIVATION) -> MacKey:
    """Check a MAC protection with ``secret``; return the key for protecting the reply."""
    _, algorithm_der = _protection_alg(message)
    assert message.protection_alg is not None and message.protection is not None
    scheme = mac_scheme(message.protection_alg, algorithm_der, limits)  # refusals before any derivation
    key = MacKey(algorithm_der, scheme.derive(secret, derivation), scheme.mac_hash)
    if not hmac.compare_digest(key.mac(message.protected_part), message.protection):
        raise bad_message_check("the MAC does not verify with the secret for this sender")  # CMP-02
    return key


def verify_signature_protection(message: PkiMessage, certificate: x509.Certificate) -> None:
    """Check a signature protection with ``certificate``'s key (the caller has decided to
    trust that certificate for this sender: CMP-04 is its job)."""
    oid, _ = _protection_alg(message)
    assert message.protection_alg is not None and message.protection is not None
    if oid in MAC_ALGORITHMS:
        raise bad_message_check("the message is MAC-protected, not signed")
    parameters = message.protection_alg["parameters"]
    try:
        public_key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CmpFailure(FailInfo.badAlg, "the sender certificate's key cannot be used") from None
    try:
        verify_signature(
            public_key,
            oid,
            bytes(parameters) if parameters.isValue else None,
            message.protection,
            message.protected_part,
        )
    except CAError as exc:
        if exc.reason is FailureReason.BAD_ALGORITHM:
            raise CmpFailure(FailInfo.badAlg, exc.detail) from None
        raise bad_message_check(f"the signature protection does not verify: {exc.detail}") from None


def signature_algorithm(
    public_key: PublicKeyTypes, hash_name: str = "sha256"
) -> tuple[bytes, hashes.HashAlgorithm | None]:
    """The protectionAlg (DER) a reply signed with this key carries, and the hash to sign with
    (None for EdDSA). RFC 9481 §3: ECDSA and RSA PKCS#1 v1.5 with SHA-2, Ed25519, Ed448."""
    hash_alg = HASHES[HASH_OIDS[hash_name]]()
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return algorithm_identifier(ECDSA_WITH[hash_name]), hash_alg
    if isinstance(public_key, rsa.RSAPublicKey):
        return algorithm_identifier(RSA_WITH[hash_name], b"\x05\x00"), hash_alg
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return algorithm_identifier(ED25519), None
    if isinstance(public_key, ed448.Ed448PublicKey):
        return algorithm_identifier(ED448), None
    raise ValueError(f"a {type(public_key).__name__} cannot sign CMP messages")


async def sign_protection(signer: Signer, protected_part: bytes, hash_alg: hashes.HashAlgorithm | None) -> bytes:
    """The signature over ``protected_part`` by ``signer``, checked before release when the
    backend asks for it (CORE-11's verify-after-sign, as ca/cms/signed.py does)."""
    signature = await signer.run(lambda: sign_bytes(signer.private_key(), protected_part, hash_alg))
    if signer.needs_signature_check:
        if not verify_bytes(signer.public_key(), signature, protected_part, hash_alg):
            raise SignerUnavailable(f"signer {signer.name}: CMP protection does not verify with its key")
    return signature
