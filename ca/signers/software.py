"""Software keys: PKCS#8 PEM files encrypted at rest.

The passphrase never sits in the config file itself: it comes from an
environment variable or from a file the config names (ca/config_secrets.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)

from ca.errors import ConfigError, SignerUnavailable

T = TypeVar("T")

INLINE_RSA_BITS = 2048  # RSA keys up to this size sign and decrypt on the calling thread


def save_encrypted_key(key: CertificateIssuerPrivateKeyTypes, path: Path, passphrase: bytes) -> None:
    """Write a PKCS#8 PEM, encrypted with the passphrase, readable by its owner only."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)


def load_encrypted_key(path: Path, passphrase: bytes) -> CertificateIssuerPrivateKeyTypes:
    """Read a PKCS#8 PEM key; a wrong passphrase or a bad file is a ConfigError naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read key file: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase or None)
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: wrong passphrase or not a PKCS#8 private key") from None
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise ConfigError(f"{path}: unsupported key type {type(key).__name__}")
    return key


class SoftwareSigner:
    """A key held in this process's memory, loaded from an encrypted file."""

    # Verify-after-sign guards against faults in a separate device (docs/reliability.md, demand 11);
    # an in-process OpenSSL key has none to guard against (and OpenSSL checks RSA-CRT itself).
    needs_signature_check = False

    def __init__(self, name: str, key: CertificateIssuerPrivateKeyTypes) -> None:
        self.name = name
        self._key = key
        self._public = key.public_key()

    @classmethod
    def from_file(cls, name: str, path: Path, passphrase: bytes) -> SoftwareSigner:
        return cls(name, load_encrypted_key(path, passphrase))

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        return self._public

    def private_key(self) -> CertificateIssuerPrivateKeyTypes:
        return self._key

    async def run(self, work: Callable[[], T]) -> T:
        # ECDSA, EdDSA and RSA up to 2048 bits take well under half a millisecond: the thread
        # hop (a queue, a wake-up, the GIL handed over twice) cost as much CPU as an RSA-2048
        # operation (bench/README.md, SCEP), so they run here. Larger RSA keys take
        # milliseconds and go to the default executor, so the event loop keeps answering.
        if isinstance(self._key, rsa.RSAPrivateKey) and self._key.key_size > INLINE_RSA_BITS:
            return await asyncio.get_running_loop().run_in_executor(None, work)
        return work()

    def decrypt(self, ciphertext: bytes) -> bytes:
        from cryptography.hazmat.primitives.asymmetric import padding

        if not isinstance(self._key, rsa.RSAPrivateKey):
            raise SignerUnavailable(f"signer {self.name}: key cannot decrypt (not RSA)")
        return self._key.decrypt(ciphertext, padding.PKCS1v15())

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None
