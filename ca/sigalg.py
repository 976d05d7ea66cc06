"""Signature algorithms: one table from key family to how a signature is made and checked.

Our own signatures (certificates in ca/issuer.py, OCSP responses and CRLs in ca/revocation/)
are made and checked by `sign_bytes` and `verify_bytes`, from the key's type and the hash
the issuer chose. Signatures made by someone else's key (CMS in ca/cms/, CRMF in
ca/crmf.py) come with an AlgorithmIdentifier: `verify_signature` maps it onto the same
table, so SCEP, EST and CMP refuse the same weak algorithms (MD5 and SHA-1 unless a
caller opts in for legacy clients) and report the same `FailureReason`s: BAD_ALGORITHM for
what we do not accept, BAD_SIGNATURE for what does not verify. MD5 is in the table only so that
a SCEP profile for legacy clients can opt in (``allow_md5``); no other caller does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from ca.errors import CAError, FailureReason, InternalError

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "1.3.14.3.2.26": hashes.SHA1,
    "2.16.840.1.101.3.4.2.4": hashes.SHA224,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
    "1.2.840.113549.2.5": hashes.MD5,  # legacy SCEP only: allow_md5
}
HASH_OIDS: dict[str, str] = {cls().name: oid for oid, cls in HASHES.items()}

RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
RSASSA_PSS = "1.2.840.113549.1.1.10"
MGF1 = "1.2.840.113549.1.1.8"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
ED25519 = "1.3.101.112"
ED448 = "1.3.101.113"

# hash name -> the signature OIDs that name it: (RSA PKCS#1 v1.5, RFC 8017; ECDSA, RFC 5758)
_HASHED_SIGNATURES = {
    "sha1": ("1.2.840.113549.1.1.5", "1.2.840.10045.4.1"),
    "sha224": ("1.2.840.113549.1.1.14", "1.2.840.10045.4.3.1"),
    "sha256": ("1.2.840.113549.1.1.11", "1.2.840.10045.4.3.2"),
    "sha384": ("1.2.840.113549.1.1.12", "1.2.840.10045.4.3.3"),
    "sha512": ("1.2.840.113549.1.1.13", "1.2.840.10045.4.3.4"),
}
ECDSA_WITH = {hash_name: ecdsa for hash_name, (_, ecdsa) in _HASHED_SIGNATURES.items()}
RSA_WITH = {hash_name: rsa_pkcs1 for hash_name, (rsa_pkcs1, _) in _HASHED_SIGNATURES.items()}
# signature OID -> (family, hash OID or None when the hash comes from elsewhere)
_SIGNATURES: dict[str, tuple[str, str | None]] = {
    RSA_ENCRYPTION: ("rsa", None),
    RSASSA_PSS: ("pss", None),
    EC_PUBLIC_KEY: ("ecdsa", None),
    ED25519: ("ed25519", None),
    ED448: ("ed448", None),
}
_SIGNATURES.update(
    (oid, (family, HASH_OIDS[hash_name]))
    for hash_name, oids in _HASHED_SIGNATURES.items()
    for family, oid in zip(("rsa", "ecdsa"), oids, strict=True)
)
_SIGNATURES["1.2.840.113549.1.1.4"] = ("rsa", HASH_OIDS["md5"])  # md5WithRSAEncryption: legacy SCEP CSRs only

VerifyingKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey


@dataclass(frozen=True)
class _Scheme:
    """One key family: its key classes, and the arguments after the data that cryptography's
    ``sign`` and ``verify`` take for it (None: the algorithm fixes its own hash)."""

    name: str  # in messages: "an ECDSA signature algorithm with a non-EC key"
    key_name: str
    public: type[VerifyingKey]
    private: type[SigningKey]
    arguments: Callable[[hashes.HashAlgorithm], tuple[Any, ...]] | None

    def arguments_for(self, hash_alg: hashes.HashAlgorithm | None) -> tuple[Any, ...]:
        if self.arguments is None:
            return ()
        if hash_alg is None:
            raise InternalError(f"{self.name} signatures need a hash algorithm")
        return self.arguments(hash_alg)


# family (as _SIGNATURES names it; RSASSA-PSS is "rsa" with parameters of its own) -> scheme
_SCHEMES: dict[str, _Scheme] = {
    "ecdsa": _Scheme("ECDSA", "EC", ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey, lambda h: (ec.ECDSA(h),)),
    "rsa": _Scheme("RSA", "RSA", rsa.RSAPublicKey, rsa.RSAPrivateKey, lambda h: (padding.PKCS1v15(), h)),
    "ed25519": _Scheme("Ed25519", "Ed25519", ed25519.Ed25519PublicKey, ed25519.Ed25519PrivateKey, None),
    "ed448": _Scheme("Ed448", "Ed448", ed448.Ed448PublicKey, ed448.Ed448PrivateKey, None),
}


def _scheme_of(key: PublicKeyTypes | PrivateKeyTypes) -> _Scheme | None:
    for scheme in _SCHEMES.values():
        if isinstance(key, (scheme.public, scheme.private)):
            return scheme
    return None


def sign_bytes(key: PrivateKeyTypes, data: bytes, hash_alg: hashes.HashAlgorithm | None) -> bytes:
    """Our signature over ``data``: PKCS#1 v1.5 for RSA, ECDSA, or EdDSA (which ignores ``hash_alg``)."""
    scheme = _scheme_of(key)
    if scheme is None or not isinstance(key, scheme.private):
        raise InternalError(f"cannot sign with {type(key).__name__}")
    return key.sign(data, *scheme.arguments_for(hash_alg))


def verify_bytes(key: PublicKeyTypes, signature: bytes, data: bytes, hash_alg: hashes.HashAlgorithm | None) -> bool:
    """Whether ``signature`` is ours over ``data`` (as `sign_bytes` makes it); False for a key
    type we never sign with."""
    scheme = _scheme_of(key)
    if scheme is None or not isinstance(key, scheme.public):
        return False
    try:
        key.verify(signature, data, *scheme.arguments_for(hash_alg))
    except InvalidSignature:
        return False
    return True


def hash_for(oid: str, *, allow_sha1: bool, allow_md5: bool = False) -> hashes.HashAlgorithm:
    """The hash an OID names, if we accept it (SHA-1 and MD5 only when the caller opts in)."""
    cls = HASHES.get(oid)
    if cls is None:
        raise CAError(f"digest algorithm {oid} is not accepted", FailureReason.BAD_ALGORITHM)
    if cls is hashes.SHA1 and not allow_sha1:
        raise CAError("SHA-1 is not accepted here", FailureReason.BAD_ALGORITHM)
    if cls is hashes.MD5 and not allow_md5:
        raise CAError("MD5 is not accepted here", FailureReason.BAD_ALGORITHM)
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
    allow_md5: bool = False,
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
    scheme = _SCHEMES["rsa" if family == "pss" else family]
    if not isinstance(public_key, scheme.public):
        raise CAError(
            f"an {scheme.name} signature algorithm with a non-{scheme.key_name} key", FailureReason.BAD_ALGORITHM
        )
    if family == "pss":
        pss, algo = _pss(parameters, allow_sha1=allow_sha1)
        if digest is not None and HASH_OIDS.get(algo.name) != digest:
            raise CAError("RSASSA-PSS hash and digest algorithm disagree", FailureReason.BAD_ALGORITHM)
        arguments: tuple[Any, ...] = (pss, algo)
    elif scheme.arguments is not None:
        if hash_oid is None:
            raise CAError(f"{scheme.name} without a digest algorithm", FailureReason.BAD_ALGORITHM)
        arguments = scheme.arguments(hash_for(hash_oid, allow_sha1=allow_sha1, allow_md5=allow_md5))
    else:
        arguments = ()
    try:
        public_key.verify(signature, data, *arguments)
    except InvalidSignature:
        raise CAError("signature does not verify", FailureReason.BAD_SIGNATURE) from None
    except (ValueError, TypeError) as exc:  # e.g. a DER ECDSA signature that does not parse
        raise CAError(f"signature cannot be checked: {exc}", FailureReason.BAD_SIGNATURE) from None
