"""Signing CRL and OCSP bytes through any `Signer`, and checking the result.

The signature algorithm identifier is taken from a throwaway-key CRL that
cryptography builds for the same key type and hash, so it is exactly what
cryptography itself would write (RSA with NULL parameters, ECDSA without).
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ca.errors import SignerUnavailable
from ca.issuer import throwaway_key
from ca.keys import default_hash
from ca.revocation.asn1 import children, header
from ca.sigalg import sign_bytes, verify_bytes
from ca.signers.base import Signer
from ca.signers.software import SoftwareSigner


def _key_tag(public: CertificateIssuerPublicKeyTypes) -> str:
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"ec-{public.curve.name}"
    if isinstance(public, rsa.RSAPublicKey):
        return "rsa"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    raise SignerUnavailable(f"unsupported signing key {type(public).__name__}")


_ALGORITHMS: dict[tuple[str, str | None], bytes] = {}


def algorithm_identifier(public: CertificateIssuerPublicKeyTypes, hash_alg: hashes.HashAlgorithm | None) -> bytes:
    """AlgorithmIdentifier DER for signatures by this key type with this hash."""
    slot = (_key_tag(public), None if hash_alg is None else hash_alg.name)
    if slot not in _ALGORITHMS:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "algorithm probe")])
        at = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        probe = x509.CertificateRevocationListBuilder().issuer_name(name).last_update(at).next_update(at)
        der = probe.sign(throwaway_key(public), hash_alg).public_bytes(Encoding.DER)  # type: ignore[arg-type]
        _, body, stop = header(der, 0)
        _, start, _, end = list(children(der, body, stop))[1]
        _ALGORITHMS[slot] = der[start:end]
    return _ALGORITHMS[slot]


def signature_hash(public: CertificateIssuerPublicKeyTypes) -> hashes.HashAlgorithm | None:
    return default_hash(public)


def signs_in_process(signer: Signer) -> bool:
    """A key in this process's memory that needs no verify-after-sign: safe to sign with
    inline on the event loop (no device to wait for)."""
    return isinstance(signer, SoftwareSigner) and not must_verify(signer)


def must_verify(signer: Signer) -> bool:
    """Verify-after-sign (docs/reliability.md, demand 11) unless the backend already checks each
    signature or cannot be faulted: the Signer's ``needs_signature_check`` (ca/signers/base.py)."""
    return signer.needs_signature_check


async def sign_all(signer: Signer, tbs_list: list[bytes], hash_alg: hashes.HashAlgorithm | None) -> list[bytes]:
    """Sign each TBS in one trip to the signer's executor; every signature is checked when it
    came from outside this process. Raises SignerUnavailable."""
    key = signer.private_key()
    try:
        signatures = await signer.run(lambda: [sign_bytes(key, tbs, hash_alg) for tbs in tbs_list])
    except SignerUnavailable:
        raise
    except Exception as exc:
        raise SignerUnavailable(f"signer {signer.name}: signing failed ({type(exc).__name__})") from exc
    if must_verify(signer):
        public = signer.public_key()
        for tbs, signature in zip(tbs_list, signatures, strict=True):
            if not verify_bytes(public, signature, tbs, hash_alg):
                raise SignerUnavailable(f"signer {signer.name}: signature does not verify")
    return signatures
