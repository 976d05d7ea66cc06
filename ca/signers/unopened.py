"""A signer that is named in the config but deliberately not opened.

Commands that only read the store (`tetra inventory list`, `requests list`, `audit verify`) build the
CA like every other command, but must not ask for an HSM PIN or a key passphrase they will never
use. Their issuers get this stand-in: it knows the public key (from the CA certificate, so the
issuer's key check still holds) and refuses, in one line, anything that would need the private key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)

from ca.errors import ConfigError

T = TypeVar("T")


class UnopenedSigner:
    needs_signature_check = True  # never reached: nothing is ever signed through it

    def __init__(self, name: str, public: CertificateIssuerPublicKeyTypes) -> None:
        self.name = name
        self._public = public

    def _refuse(self) -> ConfigError:
        return ConfigError(f"signer {self.name}: this command reads only and did not open the key")

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        return self._public

    def private_key(self) -> CertificateIssuerPrivateKeyTypes:
        raise self._refuse()

    async def run(self, work: Callable[[], T]) -> T:
        raise self._refuse()

    async def check(self) -> None:
        raise self._refuse()

    async def close(self) -> None:
        """Nothing was opened."""
