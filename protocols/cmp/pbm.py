"""MAC protection's key derivation: PasswordBasedMac (RFC 9810 §5.1.3.1) and PBMAC1 (RFC 9481
§6.1.1, RFC 8018 §7.1), with every parameter checked before any key is derived (CMP-03).

The sender chooses the iteration count. A peer that asks for 2^31−1 iterations must be
refused by reading one INTEGER, not by hashing for minutes: `mac_scheme` parses and bounds
all parameters (iterations inside [floor, ceiling], salt length, known one-way function,
PRF and MAC) and returns a `MacScheme` that has not derived anything yet. Derivation goes
through a `Derivation` object so tests can count that no work was done for a refusal.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from pyasn1.codec.der import decoder as der_decoder
from pyasn1_alt_modules import rfc8018, rfc9810

from ca.sigalg import HASH_OIDS, HASHES
from protocols.cmp.config import MacLimits
from protocols.cmp.der import algorithm_identifier, integer, octet_string, sequence
from protocols.cmp.errors import CmpFailure, FailInfo, bad_data_format

PASSWORD_BASED_MAC = str(rfc9810.id_PasswordBasedMac)  # 1.2.840.113533.7.66.13
PBMAC1 = str(rfc8018.id_PBMAC1)
PBKDF2 = str(rfc8018.id_PBKDF2)
HMAC_SHA1 = "1.3.6.1.5.5.8.1.2"  # RFC 2404; OpenSSL 3.0's default -mac for PasswordBasedMac
HMAC_WITH = {  # RFC 8018 / RFC 4231 HMAC OIDs -> hash name
    str(rfc8018.id_hmacWithSHA1): "sha1",
    HMAC_SHA1: "sha1",
    str(rfc8018.id_hmacWithSHA224): "sha224",
    str(rfc8018.id_hmacWithSHA256): "sha256",
    str(rfc8018.id_hmacWithSHA384): "sha384",
    str(rfc8018.id_hmacWithSHA512): "sha512",
}
HMAC_OID = {name: oid for oid, name in HMAC_WITH.items() if oid.startswith("1.2.840.113549.2.") and name != "sha1"}
OWF_SHA2 = ("sha224", "sha256", "sha384", "sha512")  # never SHA-1 nor the MD5 legacy SCEP brought into HASHES
OWF_HASHES = {HASH_OIDS[name]: name for name in OWF_SHA2}


class Derivation:
    """The key derivations themselves: the seam tests replace to count work."""

    def owf_iterated(self, hash_name: str, secret: bytes, salt: bytes, iterations: int) -> bytes:
        """RFC 9810 §5.1.3.1: the OWF over secret || salt, then over its own output, in all
        ``iterations`` times."""
        digest: Callable[[bytes], hashlib._Hash] = getattr(hashlib, hash_name)  # hashlib.new's lookup, once
        key = digest(secret + salt).digest()
        for _ in range(iterations - 1):
            key = digest(key).digest()
        return key

    def pbkdf2(self, hash_name: str, secret: bytes, salt: bytes, iterations: int, length: int) -> bytes:
        algorithm = HASHES[HASH_OIDS[hash_name]]()
        return PBKDF2HMAC(algorithm=algorithm, length=length, salt=salt, iterations=iterations).derive(secret)


DERIVATION = Derivation()


@dataclass(frozen=True)
class MacScheme:
    """A checked MAC protection: how to turn the shared secret into the HMAC key, and which
    HMAC. ``algorithm`` is the protectionAlg DER, echoed in a reply protected the same way."""

    algorithm: bytes
    kdf: str  # "owf" or "pbkdf2"
    kdf_hash: str
    salt: bytes
    iterations: int
    key_length: int
    mac_hash: str

    def derive(self, secret: bytes, derivation: Derivation = DERIVATION) -> bytes:
        if self.kdf == "owf":
            return derivation.owf_iterated(self.kdf_hash, secret, self.salt, self.iterations)
        return derivation.pbkdf2(self.kdf_hash, secret, self.salt, self.iterations, self.key_length)


def _decode(der: bytes, spec: Any, what: str) -> Any:
    try:
        value, rest = der_decoder.decode(der, asn1Spec=spec)
    except Exception as exc:  # the decoder boundary, as in protocols.cmp.message
        raise bad_data_format(f"{what} cannot be decoded ({type(exc).__name__})") from None
    if rest:
        raise bad_data_format(f"{what} has trailing bytes")
    return value


def _params_der(algorithm: Any, what: str) -> bytes:
    parameters = algorithm["parameters"]
    if not parameters.isValue:
        raise bad_data_format(f"{what} has no parameters")
    return bytes(parameters)


def _check_bounds(iterations: int, salt: bytes, limits: MacLimits) -> None:
    if not limits.min_iterations <= iterations <= limits.max_iterations:
        raise CmpFailure(  # the value is not quoted: a 100,000-digit INTEGER would not format
            FailInfo.badAlg, f"iterationCount is outside [{limits.min_iterations}, {limits.max_iterations}]"
        )
    if not limits.min_salt <= len(salt) <= limits.max_salt:
        raise CmpFailure(FailInfo.badAlg, f"a {len(salt)}-octet salt is outside [{limits.min_salt}, {limits.max_salt}]")


def _mac_hash(algorithm: Any, *, allow_sha1: bool) -> str:
    oid = str(algorithm["algorithm"])
    name = HMAC_WITH.get(oid)
    if name is None or (name == "sha1" and not allow_sha1):
        raise CmpFailure(FailInfo.badAlg, f"MAC algorithm {oid} is not accepted")
    return name


def _password_based_mac(algorithm_der: bytes, params_der: bytes, limits: MacLimits) -> MacScheme:
    params = _decode(params_der, rfc9810.PBMParameter(), "PBMParameter")
    salt, iterations = bytes(params["salt"]), int(params["iterationCount"])
    _check_bounds(iterations, salt, limits)
    owf_oid = str(params["owf"]["algorithm"])
    owf = OWF_HASHES.get(owf_oid)
    if owf is None:
        raise CmpFailure(FailInfo.badAlg, f"one-way function {owf_oid} is not accepted")
    mac = _mac_hash(params["mac"], allow_sha1=limits.allow_hmac_sha1)
    return MacScheme(algorithm_der, "owf", owf, salt, iterations, hashlib.new(owf).digest_size, mac)


def _pbmac1(algorithm_der: bytes, params_der: bytes, limits: MacLimits) -> MacScheme:
    params = _decode(params_der, rfc8018.PBMAC1_params(), "PBMAC1-params")
    kdf = params["keyDerivationFunc"]
    if str(kdf["algorithm"]) != PBKDF2:
        raise CmpFailure(FailInfo.badAlg, f"PBMAC1 key derivation {kdf['algorithm']} is not PBKDF2")
    pbkdf2 = _decode(_params_der(kdf, "PBKDF2"), rfc8018.PBKDF2_params(), "PBKDF2-params")
    if pbkdf2["salt"].getName() != "specified":
        raise CmpFailure(FailInfo.badAlg, "a PBKDF2 salt from another source is not accepted")
    salt, iterations = bytes(pbkdf2["salt"]["specified"]), int(pbkdf2["iterationCount"])
    _check_bounds(iterations, salt, limits)
    prf = _mac_hash(pbkdf2["prf"], allow_sha1=False)  # an absent prf means HMAC-SHA-1
    mac = _mac_hash(params["messageAuthScheme"], allow_sha1=False)
    length = int(pbkdf2["keyLength"]) if pbkdf2["keyLength"].isValue else hashlib.new(mac).digest_size
    if not 16 <= length <= 64:
        raise CmpFailure(FailInfo.badAlg, "PBKDF2 keyLength is outside [16, 64]")
    return MacScheme(algorithm_der, "pbkdf2", prf, salt, iterations, length, mac)


def mac_scheme(algorithm: Any, algorithm_der: bytes, limits: MacLimits) -> MacScheme:
    """The checked scheme of a protectionAlg (pyasn1 AlgorithmIdentifier and its DER), or a
    refusal: badAlg for what we do not accept, badDataFormat for parameters that do not parse.
    Nothing is derived here."""
    oid = str(algorithm["algorithm"])
    if oid == PASSWORD_BASED_MAC:
        return _password_based_mac(algorithm_der, _params_der(algorithm, "PasswordBasedMac"), limits)
    if oid == PBMAC1:
        return _pbmac1(algorithm_der, _params_der(algorithm, "PBMAC1"), limits)
    raise CmpFailure(FailInfo.badAlg, f"MAC protection {oid} is not accepted")


def password_based_mac_algorithm(salt: bytes, iterations: int, owf: str = "sha256", mac: str = "sha256") -> bytes:
    """A PasswordBasedMac protectionAlg (DER) for a message we start ourselves."""
    params = sequence(
        octet_string(salt),
        algorithm_identifier(HASH_OIDS[owf]),
        integer(iterations),
        algorithm_identifier(HMAC_OID[mac]),
    )
    return algorithm_identifier(PASSWORD_BASED_MAC, params)


def pbmac1_algorithm(salt: bytes, iterations: int, prf: str = "sha256", mac: str = "sha256", length: int = 32) -> bytes:
    """A PBMAC1 protectionAlg (DER): PBKDF2 with HMAC-``prf``, then HMAC-``mac`` (RFC 9481 §6.1.1)."""
    kdf_params = sequence(octet_string(salt), integer(iterations), integer(length), algorithm_identifier(HMAC_OID[prf]))
    params = sequence(algorithm_identifier(PBKDF2, kdf_params), algorithm_identifier(HMAC_OID[mac]))
    return algorithm_identifier(PBMAC1, params)
