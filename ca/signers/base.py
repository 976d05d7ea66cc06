"""The one signing interface every key backend implements.

A `Signer` hands out a private-key object that cryptography's builders accept
(its ``sign()`` reaches the backend), so certificates, CRLs and OCSP responses
are signed the same way whether the key is a file or lives in an HSM.
Blocking work (an HSM round trip, an RSA signature) goes through ``run()`` so
the event loop never waits on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)

T = TypeVar("T")


class Signer(Protocol):
    """A key you can sign with, whatever holds it."""

    name: str
    # Whether callers must verify each signature before releasing it (CORE-11,
    # verify-after-sign). False only when the backend already verifies every signature
    # inside sign() (PKCS#11) or cannot be faulted (an in-process key); a wrapper or
    # an unknown backend says True so the caller checks.
    needs_signature_check: bool

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        """The public half, read once and cached (no backend call)."""
        ...

    def private_key(self) -> CertificateIssuerPrivateKeyTypes:
        """An object cryptography's builders can sign with; sign() reaches the backend."""
        ...

    async def run(self, work: Callable[[], T]) -> T:
        """Run blocking work that uses this key off the event loop.

        Backends that are not thread safe (PKCS#11) serialise every call on one
        thread; failures of the backend surface as `SignerUnavailable`.
        """
        ...

    async def check(self) -> None:
        """Prove the key is usable now (readiness probe); raise SignerUnavailable if not."""
        ...

    async def close(self) -> None:
        """Release sessions and threads."""
        ...


class DecryptingSigner(Signer, Protocol):
    """An RA key that also decrypts (RSA PKCS#1 v1.5, for SCEP envelopes)."""

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Blocking: call it through run()."""
        ...
