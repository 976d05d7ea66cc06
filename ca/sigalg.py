"""Signature algorithm identifiers shared by CMS (ca/cms/) and CRMF (ca/crmf.py).

Both carry an AlgorithmIdentifier next to a signature made by someone else's key;
one table decides which identifiers we accept, so SCEP, EST and CMP refuse the same
weak algorithms (MD5 always, SHA-1 only when a caller opts in for legacy clients)
and report the same `FailureReason`s: BAD_ALGORITHM for what we do not accept,
BAD_SIGNATURE for what does not verify.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from ca.errors import CAError, FailureReason

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "1.3.14.3.2.26": hashes.SHA1,
    "2.16.840.1.101.3.4.2.4": hashes.SHA224,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
HASH_OIDS: dict[str, str] = {cls().name: oid for oid, cls in HASHES.items()}

RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSASSA_PSS = "1.2.840.113549.1.1.10"
MGF1 = "1.2.840.113549.1.1.8"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
ED25519 = "1.3.101.112"
ED448 = "1.3.101.113"

# signature OID -> (family, hash OID or None when the hash comes from elsewhere)
_SIGNATURES: dict[str, tuple[str, str | None]] = {
    RSA_ENCRYPTION: ("rsa", None),
    "1.2.840.113549.1.1.5": ("rsa", "1.3.14.3.2.26"),
    "1.2.840.113549.1.1.14": ("rsa", "2.16.840.1.101.3.4.2.4"),
    "1.2.840.113549.1.1.11": ("rsa", "2.16.840.1.101.3.4.2.1"),
    "1.2.840.113549.1.1.12": ("rsa", "2.16.840.1.101.3.4.2.2"),
    "1.2.840.113549.1.1.13": ("rsa", "2.16.840.1.101.3.4.2.3"),
    RSASSA_PSS: ("pss", None),
    EC_PUBLIC_KEY: ("ecdsa", None),
    "1.2.840.10045.4.1": ("ecdsa", "1.3.14.3.2.26"),
    "1.2.840.10045.4.3.1": ("ecdsa", "2.16.840.1.101.3.4.2.4"),
    "1.2.840.10045.4.3.2": ("ecdsa", "2.16.840.1.101.3.4.2.1"),
    "1.2.840.10045.4.3.3": ("ecdsa", "2.16.840.1.101.3.4.2.2"),
    "1.2.840.10045.4.3.4": ("ecdsa", "2.16.840.1.101.3.4.2.3"),
    ED25519: ("ed25519", None),
    ED448: ("ed448", None),
}
ECDSA_WITH = {
    "sha1": "1.2.840.10045.4.1",
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
}


def hash_for(oid: str, *, allow_sha1: bool) -> hashes.HashAlgorithm:
    """The hash an OID names, if we accept it."""
    cls = HASHES.get(oid)
    if cls is None:
        raise CAError(f"digest algorithm {oid} is not accepted", FailureReason.BAD_ALGORITHM)
    if cls is hashes.SHA1 and not allow_sha1:
        raise CAError("SHA-1 is not accepted here", FailureReason.BAD_ALGORITHM)
    return cls()


def _pss(parameters: bytes | None, *, allow_sha1: bool) -> tuple[padding.PSS, hashes.HashAlgorithm]:
    """RSASSA-PSS-params (RFC 4055): hash, MGF1 hash, salt length; absent fields mean SHA-1 defaults."""
    from asn1crypto import algos

    if not parameters:
        raise CAError("RSASSA-PSS without parameters means SHA-1; not accepted", FailureReason.BAD_ALGORITHM)
    try:
        params = algos.RSASSAPSSParams.load(parameters)
        hash_oid = params["hash_algorithm"]["algorithm"].dotted
        mgf = params["mask_gen_algorithm"]
        mgf_oid = mgf["algorithm"].dotted
        mgf_hash_oid = mgf["parameters"]["algorithm"].dotted
        salt = int(params["salt_length"].native)
        trailer_ok = params["trailer_field"].native in (1, "trailer_field_bc")
    except CAError:
        raise
    except Exception:
        raise CAError("RSASSA-PSS parameters cannot be parsed", FailureReason.MALFORMED) from None
    if mgf_oid != MGF1 or not trailer_ok or not 0 <= salt <= 1024:
        raise CAError("RSASSA-PSS parameters are not MGF1 / trailer 1", FailureReason.BAD_ALGORITHM)
    algorithm = hash_for(hash_oid, allow_sha1=allow_sha1)
    mgf_hash = hash_for(mgf_hash_oid, allow_sha1=allow_sha1)
    return padding.PSS(mgf=padding.MGF1(mgf_hash), salt_length=salt), algorithm


def verify_signature(
    public_key: PublicKeyTypes,
    algorithm: str,
    parameters: bytes | None,
    signature: bytes,
    data: bytes,
    *,
    digest: str | None = None,
    allow_sha1: bool = False,
) -> None:
    """Check ``signature`` over ``data`` under the AlgorithmIdentifier (dotted OID, parameters DER).

    ``digest`` is the separate digest algorithm OID that CMS SignerInfo carries: it is
    the hash for bare rsaEncryption / id-ecPublicKey, and must agree with any hash the
    signature OID names. Returns nothing; raises CAError on refusal or mismatch.
    """
    entry = _SIGNATURES.get(algorithm)
    if entry is None:
        raise CAError(f"signature algorithm {algorithm} is not accepted", FailureReason.BAD_ALGORITHM)
    family, named_hash = entry
    if named_hash is not None and digest is not None and named_hash != digest:
        raise CAError("signature and digest algorithms disagree", FailureReason.BAD_ALGORITHM)
    hash_oid = named_hash or digest
    try:
        if family in ("rsa", "pss"):
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise CAError("an RSA signature algorithm with a non-RSA key", FailureReason.BAD_ALGORITHM)
            if family == "pss":
                pss, algo = _pss(parameters, allow_sha1=allow_sha1)
                if digest is not None and HASH_OIDS.get(algo.name) != digest:
                    raise CAError("RSASSA-PSS hash and digest algorithm disagree", FailureReason.BAD_ALGORITHM)
                public_key.verify(signature, data, pss, algo)
            else:
                if hash_oid is None:
                    raise CAError("rsaEncryption without a digest algorithm", FailureReason.BAD_ALGORITHM)
                public_key.verify(signature, data, padding.PKCS1v15(), hash_for(hash_oid, allow_sha1=allow_sha1))
        elif family == "ecdsa":
            if not isinstance(public_key, ec.EllipticCurvePublicKey):
                raise CAError("an ECDSA signature algorithm with a non-EC key", FailureReason.BAD_ALGORITHM)
            if hash_oid is None:
                raise CAError("ECDSA without a digest algorithm", FailureReason.BAD_ALGORITHM)
            public_key.verify(signature, data, ec.ECDSA(hash_for(hash_oid, allow_sha1=allow_sha1)))
        elif family == "ed25519":
            if not isinstance(public_key, ed25519.Ed25519PublicKey):
                raise CAError("an Ed25519 signature with a non-Ed25519 key", FailureReason.BAD_ALGORITHM)
            public_key.verify(signature, data)
        else:
            if not isinstance(public_key, ed448.Ed448PublicKey):
                raise CAError("an Ed448 signature with a non-Ed448 key", FailureReason.BAD_ALGORITHM)
            public_key.verify(signature, data)
    except InvalidSignature:
        raise CAError("signature does not verify", FailureReason.BAD_SIGNATURE) from None
    except (ValueError, TypeError) as exc:  # e.g. a DER ECDSA signature that does not parse
        raise CAError(f"signature cannot be checked: {exc}", FailureReason.BAD_SIGNATURE) from None
