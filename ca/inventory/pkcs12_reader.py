"""The certificates of a PKCS#12 file, read without ever decrypting its private key.

cryptography's PKCS#12 loader returns the key along with the certificates, so it decrypts the
key bag, with whatever key-derivation cost the file asks for: a hostile file can hide a key bag
with billions of iterations inside an encrypted safe, where no count can be checked beforehand.
The inventory wants certificates only, so this module does the little of RFC 7292 they need:
check the MAC, decrypt the encrypted safes (which hold the certificates) and collect the
certificate bags. Every key derivation that runs here (the MAC's and each encrypted safe's) has
its iteration count in the clear, and all of them are checked against the cap before the first
one runs (CLM-07). Key bags are passed over unread.

Passwords follow the two conventions in use: the PKCS#12 KDF (MAC, legacy 3DES and RC2 safes)
takes the password as NUL-terminated UTF-16BE, where "no password" is the empty string and the
empty password is one NUL; PBES2 safes (PBKDF2, AES) take the password's bytes.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Sequence
from typing import Any

from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from ca.inventory import rc2
from ca.inventory.facts import parse_der_certificate

_KEY_MATERIAL, _IV_MATERIAL, _MAC_MATERIAL = 1, 2, 3  # RFC 7292 B.3 diversifier IDs
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha1": hashes.SHA1(),
    "sha224": hashes.SHA224(),
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


class _NotThisPassphrase(Exception):
    """Decryption with one candidate failed; the next is tried."""


class _Unsupported(ValueError):
    """A well-formed file using an algorithm this reader does not implement."""


def load_pfx(data: bytes) -> Any | None:
    """The PFX structure when ``data`` is one (version 3, password-integrity auth safe), else None."""
    try:
        pfx = asn1_pkcs12.Pfx.load(data, strict=True)
        if pfx["version"].native != "v3" or pfx["auth_safe"]["content_type"].native != "data":
            return None
        return pfx
    except Exception:  # asn1crypto's exception types are not a contract: any failure means "not a PFX"
        return None


def pkcs12_certificates(
    pfx: Any, passphrases: Sequence[bytes | None], max_iterations: int
) -> list[x509.Certificate] | None:
    """The certificates in file order with the first passphrase that opens ``pfx``; None when none
    does. Raises ValueError (one line) for a malformed file or an iteration count over the cap."""
    try:
        safes = list(pfx.authenticated_safe)
        counts = list(_iteration_counts(pfx, safes))
    except _Unsupported:
        raise
    except Exception as exc:  # the asn1crypto boundary, as in load_pfx
        raise ValueError(f"malformed ({_first_line(exc)})") from None
    for what, count in counts:
        if count > max_iterations:
            raise ValueError(f"{what} iteration count {count} is above the limit of {max_iterations}")
    authenticated = pfx["mac_data"].native is not None
    encrypted = any(content_info["content_type"].native == "encrypted_data" for content_info in safes)
    for passphrase in passphrases:
        try:
            if authenticated and not _mac_matches(pfx, passphrase):
                continue
            return list(_certificates(safes, passphrase))
        except _NotThisPassphrase:
            continue
        except _Unsupported:
            raise
        except Exception as exc:  # asn1crypto and cryptography inside the safes: their types are no contract
            if encrypted and not authenticated:
                continue  # what a wrong passphrase decrypted to, with padding that happened to fit
            raise ValueError(f"malformed ({_first_line(exc)})") from None
    return None


def _iteration_counts(pfx: Any, safes: list[Any]) -> Iterator[tuple[str, int]]:
    if pfx["mac_data"].native is not None:
        yield "MAC", int(pfx["mac_data"]["iterations"].native)
    for content_info in safes:
        content_type = content_info["content_type"].native
        if content_type == "encrypted_data":
            algorithm = content_info["content"]["encrypted_content_info"]["content_encryption_algorithm"]
            yield "certificate encryption", int(algorithm.kdf_iterations)
        elif content_type != "data":
            raise _Unsupported(f"with a {content_type} safe, which needs a recipient's private key")


def _certificates(safes: list[Any], passphrase: bytes | None) -> Iterator[x509.Certificate]:
    for content_info in safes:
        if content_info["content_type"].native == "data":
            contents = content_info["content"].native
        else:
            contents = _decrypt(content_info["content"]["encrypted_content_info"], passphrase)
        yield from _bag_certificates(asn1_pkcs12.SafeContents.load(contents))


def _bag_certificates(bags: Any) -> Iterator[x509.Certificate]:
    for bag in bags:
        bag_id = bag["bag_id"].native
        if bag_id == "cert_bag" and bag["bag_value"]["cert_id"].native == "x509":
            yield parse_der_certificate(bag["bag_value"]["cert_value"].parsed.dump())
        elif bag_id == "safe_contents":
            yield from _bag_certificates(bag["bag_value"])


def _mac_matches(pfx: Any, passphrase: bytes | None) -> bool:
    mac_data = pfx["mac_data"]
    digest_name = mac_data["mac"]["digest_algorithm"]["algorithm"].native
    if digest_name not in _HASHES:
        raise _Unsupported(f"with a {digest_name} MAC, which is not supported")
    password = _bmp_password(passphrase)
    if password is None:
        return False
    key_size = _HASHES[digest_name].digest_size
    salt, rounds = mac_data["mac_salt"].native, mac_data["iterations"].native
    key = pkcs12_kdf(digest_name, password, salt, rounds, _MAC_MATERIAL, key_size)
    expected = hmac.new(key, pfx["auth_safe"]["content"].native, digest_name).digest()
    return hmac.compare_digest(expected, mac_data["mac"]["digest"].native)


def _decrypt(encrypted: Any, passphrase: bytes | None) -> bytes:
    algorithm = encrypted["content_encryption_algorithm"]
    cipher_name, kdf = algorithm.encryption_cipher, algorithm.kdf
    salt, rounds, key_length = algorithm.kdf_salt, algorithm.kdf_iterations, algorithm.key_length
    if kdf == "pkcs12_kdf":
        password = _bmp_password(passphrase)
        if password is None:
            raise _NotThisPassphrase
        digest = algorithm.kdf_hmac
        key = pkcs12_kdf(digest, password, salt, rounds, _KEY_MATERIAL, key_length)
        iv = pkcs12_kdf(digest, password, salt, rounds, _IV_MATERIAL, algorithm.encryption_block_size)
    elif kdf == "pbkdf2" and algorithm.kdf_hmac in _HASHES:
        pbkdf2 = PBKDF2HMAC(_HASHES[algorithm.kdf_hmac], key_length, salt, rounds)
        key, iv = pbkdf2.derive(passphrase or b""), algorithm.encryption_iv
    else:
        raise _Unsupported(f"with certificates encrypted with {algorithm['algorithm'].native}, which is not supported")
    ciphertext = encrypted["encrypted_content"].native
    if cipher_name == "rc2":  # 40-bit RC2 above all, which cryptography does not offer
        padded, block_bits = rc2.decrypt_cbc(key, 8 * key_length, iv, ciphertext), 64
    elif cipher_name in ("aes", "tripledes"):
        two_key = cipher_name == "tripledes" and len(key) == 16  # two-key 3DES is K1 K2 K1
        block_cipher = algorithms.AES(key) if cipher_name == "aes" else TripleDES(key + key[:8] if two_key else key)
        decryptor = Cipher(block_cipher, modes.CBC(iv)).decryptor()
        padded, block_bits = decryptor.update(ciphertext) + decryptor.finalize(), block_cipher.block_size
    else:
        raise _Unsupported(f"with certificates encrypted with {cipher_name}, which is not supported")
    unpadder = padding.PKCS7(block_bits).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise _NotThisPassphrase from None


def pkcs12_kdf(digest_name: str, password: bytes, salt: bytes, rounds: int, purpose: int, size: int) -> bytes:
    """RFC 7292 appendix B.2: ``size`` bytes of key, IV or MAC key (``purpose`` 1, 2 or 3)."""
    new_hash = getattr(hashlib, digest_name)
    v = new_hash().block_size
    block = bytearray(_fill(salt, v) + _fill(password, v))
    output = b""
    while len(output) < size:
        a = new_hash(bytes([purpose]) * v + bytes(block)).digest()
        for _ in range(rounds - 1):
            a = new_hash(a).digest()
        output += a
        b = int.from_bytes(_fill(a, v)[:v], "big") + 1
        for start in range(0, len(block), v):
            chunk = (int.from_bytes(block[start : start + v], "big") + b) % (1 << (v * 8))
            block[start : start + v] = chunk.to_bytes(v, "big")
    return output[:size]


def _fill(data: bytes, v: int) -> bytes:
    """Copies of ``data`` cut to the next multiple of ``v`` bytes (empty stays empty)."""
    if not data:
        return b""
    target = v * -(-len(data) // v)
    return (data * -(-target // len(data)))[:target]


def _bmp_password(passphrase: bytes | None) -> bytes | None:
    """The PKCS#12 KDF's password: None when no UTF-8 text (no BMPString can carry it)."""
    if passphrase is None:
        return b""
    try:
        return passphrase.decode("utf-8").encode("utf-16-be") + b"\x00\x00"
    except UnicodeDecodeError:
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
