"""What every cryptography private-key object without private material here has in common
(placeholder keys for TBS building, keys inside a PKCS#11 token): the public half answers,
export refuses, copies are the same object. Mixed in before cryptography's key ABC."""

from __future__ import annotations

from typing import Any, NoReturn

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


class OpaqueKey:
    refusal = "this key has no exportable private material"
    _public: Any

    def _refuse(self) -> NoReturn:
        raise TypeError(self.refusal)

    def public_key(self) -> Any:
        return self._public

    def private_numbers(self) -> NoReturn:
        self._refuse()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> NoReturn:
        self._refuse()

    def private_bytes_raw(self) -> NoReturn:
        self._refuse()

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> Any:
        return self


class OpaqueECKey(OpaqueKey):
    _public: ec.EllipticCurvePublicKey

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> NoReturn:
        raise NotImplementedError("ECDH is not offered for CA keys")


class OpaqueRSAKey(OpaqueKey):
    @property
    def key_size(self) -> int:
        return int(self._public.key_size)
