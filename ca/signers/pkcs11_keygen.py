"""Generating a non-extractable key pair on a PKCS#11 token (blocking, for the command line)."""

from __future__ import annotations

import os
from functools import partial
from typing import Any

from pkcs11 import exceptions as p11err
from pkcs11.constants import Attribute, MechanismFlag, ObjectClass
from pkcs11.mechanisms import KeyType, Mechanism
from pkcs11.types import Session, Token

from ca.errors import ConfigError, SignerUnavailable
from ca.keys import parse_key_spec
from ca.signers.pkcs11_objects import _ED25519_PARAMS, _find_objects, _find_token
from ca.signers.pkcs11_token import _describe, _Module, _NotFound, _pin_text, _resolve, _WrongPin
from ca.signers.pkcs11_uri import Pkcs11Uri

__all__ = ["KEYGEN_TIMEOUT", "destroy_token_key", "generate_token_key"]

# RSA-4096 generation on a slow token can take minutes.
KEYGEN_TIMEOUT = 300.0
_CURVE_PARAMS = {
    "p256": bytes.fromhex("06082a8648ce3d030107"),
    "p384": bytes.fromhex("06052b81040022"),
}


def generate_token_key(
    module_path: str,
    uri: str,
    spec: str,
    pin: bytes | str,
    *,
    decrypt: bool = False,
    timeout: float = KEYGEN_TIMEOUT,
) -> None:
    """Generate a non-extractable key pair on the token under the URI's label (blocking).

    ``spec`` is a `ca.keys` name. The id comes from the URI or is random.
    RSA keys get CKA_DECRYPT only with ``decrypt=True`` (SCEP RA keys): a CA
    key has no business decrypting. Refuses a label that is already in use.
    """
    module, parsed = _resolve(module_path, uri)
    if parsed.object is None:
        raise ConfigError(f"{parsed}: key generation needs object=<label>")
    try:
        alg, param = parse_key_spec(spec)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if decrypt and alg != "rsa":
        raise ConfigError(f"{spec}: only RSA keys can decrypt")
    work = partial(_generate_on_thread, module, parsed, alg, param, _pin_text(pin), decrypt)
    module.call(work, timeout, f"keygen {parsed.object}")


def _generate_on_thread(module: _Module, uri: Pkcs11Uri, alg: str, param: int | str, pin: str, decrypt: bool) -> None:
    label = uri.object
    assert label is not None
    try:
        token = _find_token(module.lib(), uri)
        module.login(token, pin)
        with token.open(rw=True) as session:
            _generate_in_session(session, token, uri, label, alg, param, decrypt)
    except _WrongPin as exc:
        raise ConfigError(f"keygen {label}: {exc}") from None
    except _NotFound as exc:
        raise ConfigError(f"keygen {label}: {uri}: {exc}") from None
    except p11err.PKCS11Error as exc:
        raise SignerUnavailable(f"keygen {label}: token failed: {_describe(exc)}") from None


def _generate_in_session(
    session: Session,
    token: Token,
    uri: Pkcs11Uri,
    label: str,
    alg: str,
    param: int | str,
    decrypt: bool,
) -> None:
    for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        if _find_objects(session, {Attribute.CLASS: object_class, Attribute.LABEL: label}):
            raise ConfigError(
                f"keygen {label}: token {token.label} already has a key labelled {label!r}; refusing to create another"
            )
        if uri.id is not None and _find_objects(session, {Attribute.CLASS: object_class, Attribute.ID: uri.id}):
            raise ConfigError(f"keygen {label}: token {token.label} already has a key with id {uri.id.hex()}")
    key_id = uri.id if uri.id is not None else os.urandom(16)
    capabilities = MechanismFlag.SIGN | MechanismFlag.VERIFY
    if decrypt:
        capabilities |= MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
    private_template: dict[Attribute, Any] = {
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
    }
    public_template: dict[Attribute, Any] = {Attribute.TOKEN: True, Attribute.PRIVATE: False}
    key_length: int | None = None
    if alg == "rsa":
        assert isinstance(param, int)
        key_type, key_length = KeyType.RSA, param
    elif alg == "ec":
        assert isinstance(param, str)
        key_type = KeyType.EC
        public_template[Attribute.EC_PARAMS] = _CURVE_PARAMS[param]
    else:
        if Mechanism.EC_EDWARDS_KEY_PAIR_GEN not in token.slot.get_mechanisms():
            raise ConfigError(
                f"keygen {label}: token {token.label} does not offer "
                "CKM_EC_EDWARDS_KEY_PAIR_GEN; Ed25519 keys cannot be generated on it"
            )
        key_type = KeyType.EC_EDWARDS
        public_template[Attribute.EC_PARAMS] = _ED25519_PARAMS[0]
    public, private = session.generate_keypair(
        key_type,
        key_length,
        id=key_id,
        label=label,
        store=True,
        capabilities=capabilities,
        public_template=public_template,
        private_template=private_template,
    )
    # Trust but verify: a token that ignored the template must not hold a CA key.
    attrs = private.get_attributes([Attribute.SENSITIVE, Attribute.EXTRACTABLE, Attribute.PRIVATE, Attribute.TOKEN])
    if not (
        attrs[Attribute.SENSITIVE]
        and not attrs[Attribute.EXTRACTABLE]
        and attrs[Attribute.PRIVATE]
        and attrs[Attribute.TOKEN]
    ):
        private.destroy()
        public.destroy()
        raise SignerUnavailable(
            f"keygen {label}: token {token.label} did not honour sensitive/non-extractable; key destroyed"
        )


def destroy_token_key(module_path: str, uri: str, pin: bytes | str, *, timeout: float = 30.0) -> None:
    """Remove the key pair `generate_token_key` made under the URI's label (blocking): what a
    command does when it fails after making a CA key, so no orphan key stays on the token."""
    module, parsed = _resolve(module_path, uri)
    label = parsed.object
    if label is None:
        raise ConfigError(f"{parsed}: removing a key needs object=<label>")

    def on_thread() -> None:
        try:
            token = _find_token(module.lib(), parsed)
            module.login(token, _pin_text(pin))
            with token.open(rw=True) as session:
                for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
                    for obj in _find_objects(session, {Attribute.CLASS: object_class, Attribute.LABEL: label}):
                        obj.destroy()
        except (_WrongPin, _NotFound) as exc:
            raise ConfigError(f"removing key {label}: {exc}") from None
        except p11err.PKCS11Error as exc:
            raise SignerUnavailable(f"removing key {label}: token failed: {_describe(exc)}") from None

    module.call(on_thread, timeout, f"remove {label}")
