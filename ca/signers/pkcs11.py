"""Keys that never leave a PKCS#11 token (an HSM, SoftHSM, a smart card).

Threading and login: every token call for a module runs on that module's one
dedicated thread, and each token has one login session per process beside
which every signer opens its own; `pkcs11_token`'s docstring says why.

Reliability: every signature is verified with the cached public key before
it is handed out (a fault-induced bad signature must never reach a
certificate), and a lost session is re-opened and the operation retried once.

``Pkcs11Signer.open`` is async (use ``open_blocking`` before an event loop
runs); ``generate_token_key`` is blocking, for the command line.

Layout: `pkcs11_token` (module registry, thread, logins, error classes),
`pkcs11_objects` (finding tokens, keys and public keys), `pkcs11_keys` (the
cryptography key objects), `pkcs11_keygen` (key generation) and this module
(`Pkcs11Signer`, and the public names re-exported from the others).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from pkcs11 import exceptions as p11err
from pkcs11.constants import Attribute, ObjectClass
from pkcs11.mechanisms import Mechanism
from pkcs11.types import DecryptMixin, PrivateKey, Session, SignMixin

from ca.errors import ConfigError, SignerUnavailable
from ca.signers.pkcs11_keygen import KEYGEN_TIMEOUT as KEYGEN_TIMEOUT
from ca.signers.pkcs11_keygen import generate_token_key
from ca.signers.pkcs11_keys import TokenEd25519Key, TokenEllipticCurveKey, TokenRSAKey
from ca.signers.pkcs11_objects import _find_objects, _find_token, _key_template, _public_from_token
from ca.signers.pkcs11_token import (
    _BAD_CIPHERTEXT,
    _RECOVERABLE,
    _close_quietly,
    _describe,
    _Module,
    _NotFound,
    _pin_text,
    _resolve,
    _WrongPin,
    shutdown_modules,
)
from ca.signers.pkcs11_uri import Pkcs11Uri

__all__ = ["Pkcs11Signer", "generate_token_key", "shutdown_modules"]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

# Opening loads the library and logs in: real HSMs can take seconds for that.
OPEN_TIMEOUT = 30.0
_CHECK_MESSAGE = b"tetra-ca pkcs11 signer readiness check"


class Pkcs11Signer:
    """A `Signer` whose private key lives in a PKCS#11 token and never leaves it.

    Create it with ``await Pkcs11Signer.open(...)`` (or ``open_blocking``).
    Every token call runs on the module's single thread; see the module docstring.
    """

    # Every token signature is verified inside the key object's sign(); the issuer need not repeat it.
    needs_signature_check = False

    def __init__(self, name: str, module: _Module, uri: Pkcs11Uri, pin: str, call_timeout: float) -> None:
        """Private: use open() / open_blocking(), which also connect and self-test."""
        self.name = name
        self.uri = uri
        self.call_timeout = call_timeout
        self._module = module
        self._pin = pin
        self._session: Session | None = None
        self._key: PrivateKey | None = None
        self._key_type = ""
        self._public: CertificateIssuerPublicKeyTypes | None = None
        self._private: CertificateIssuerPrivateKeyTypes | None = None
        self._closed = False
        self._pin_rejected = False

    def __repr__(self) -> str:
        return f"<Pkcs11Signer {self.name} {self.uri}>"

    # -- opening ---------------------------------------------------------------

    @classmethod
    def _prepare(cls, name: str, module_path: str, uri: str, pin: bytes | str, call_timeout: float) -> Pkcs11Signer:
        if call_timeout <= 0:
            raise ConfigError(f"signer {name}: call_timeout must be positive")
        module, parsed = _resolve(module_path, uri)
        return cls(name, module, parsed, _pin_text(pin), call_timeout)

    @classmethod
    async def open(
        cls,
        name: str,
        module_path: str,
        uri: str,
        pin: bytes | str,
        call_timeout: float = 5.0,
    ) -> Pkcs11Signer:
        """Log in, find the key, read its public half and prove it signs.

        Raises ConfigError for a bad URI, module, PIN or a missing key, and
        SignerUnavailable when the token cannot be reached.
        """
        signer = cls._prepare(name, module_path, uri, pin, call_timeout)
        timeout = max(call_timeout, OPEN_TIMEOUT)
        await signer._module.acall(signer._open_on_thread, timeout, signer._what)
        return signer

    @classmethod
    def open_blocking(
        cls,
        name: str,
        module_path: str,
        uri: str,
        pin: bytes | str,
        call_timeout: float = 5.0,
    ) -> Pkcs11Signer:
        """open() for code that runs before (or outside) the event loop."""
        signer = cls._prepare(name, module_path, uri, pin, call_timeout)
        timeout = max(call_timeout, OPEN_TIMEOUT)
        signer._module.call(signer._open_on_thread, timeout, signer._what)
        return signer

    @property
    def _what(self) -> str:
        return f"signer {self.name}"

    def _token_name(self) -> str:
        return self.uri.token or self.uri.serial or str(self.uri.slot_id or "?")

    def _unavailable(self, detail: str) -> SignerUnavailable:
        return SignerUnavailable(f"signer {self.name}: token {self._token_name()} unavailable: {detail}")

    def _open_on_thread(self) -> None:
        try:
            self._connect(initial=True)
            self._self_test()
        except _WrongPin as exc:
            raise ConfigError(f"signer {self.name}: token {self._token_name()}: {exc}") from None
        except _NotFound as exc:
            self._drop_session()
            raise ConfigError(f"signer {self.name}: {self.uri}: {exc}") from None
        except p11err.PKCS11Error as exc:
            self._drop_session()
            raise self._unavailable(_describe(exc)) from None
        except SignerUnavailable:
            self._drop_session()
            raise

    def _connect(self, initial: bool) -> None:
        """Token thread: (re)open our session, log in if needed and find the key."""
        self._drop_session()
        token = _find_token(self._module.lib(), self.uri)
        fresh_login = self._module.login(token, self._pin)
        session = token.open()
        self._session = session
        keys = _find_objects(session, _key_template(self.uri, ObjectClass.PRIVATE_KEY))
        if not keys and not fresh_login:
            # Private objects are invisible when logged out: log in again and look again.
            self._module.login(token, self._pin, force=True)
            keys = _find_objects(session, _key_template(self.uri, ObjectClass.PRIVATE_KEY))
        if len(keys) != 1:
            what = "no private key" if not keys else f"{len(keys)} private keys"
            raise _NotFound(f"{what} on token {token.label} matches the URI")
        key = keys[0]
        assert isinstance(key, PrivateKey)
        self._key = key
        if initial:
            self._key_type, self._public = _public_from_token(session, key)
            self._private = self._make_private_key()

    def _make_private_key(self) -> CertificateIssuerPrivateKeyTypes:
        public = self._public
        if isinstance(public, ec.EllipticCurvePublicKey):
            return TokenEllipticCurveKey(self, public)
        if isinstance(public, rsa.RSAPublicKey):
            return TokenRSAKey(self, public)
        if isinstance(public, ed25519.Ed25519PublicKey):
            return TokenEd25519Key(self, public)
        raise _NotFound(f"unsupported key type {type(public).__name__}")

    def _drop_session(self) -> None:
        if self._session is not None:
            _close_quietly(self._session)
        self._session = None
        self._key = None

    # -- token calls -----------------------------------------------------------

    def _usable(self) -> None:
        if self._closed:
            raise SignerUnavailable(f"signer {self.name} is closed")
        if self._pin_rejected:
            raise SignerUnavailable(
                f"signer {self.name}: the token rejected the PIN; not retrying (a token "
                "locks after too many failures): fix the PIN and restart"
            )

    def _with_key(self, op: Callable[[PrivateKey], R]) -> R:
        """Token thread: run op on the key; re-open a lost session and retry once."""
        self._usable()
        try:
            if self._key is None:
                self._connect(initial=False)
            assert self._key is not None
            return op(self._key)
        except _RECOVERABLE as exc:
            first = _describe(exc)
        except p11err.PKCS11Error as exc:
            raise self._unavailable(_describe(exc)) from exc
        except _WrongPin as exc:
            self._pin_rejected = True
            raise self._unavailable(str(exc)) from None
        except _NotFound as exc:
            raise self._unavailable(str(exc)) from None
        log.warning("signer %s: %s; re-opening the session and retrying once", self.name, first)
        try:
            self._connect(initial=False)
            assert self._key is not None
            return op(self._key)
        except p11err.PKCS11Error as exc:
            self._drop_session()
            raise self._unavailable(f"{_describe(exc)} (after {first})") from exc
        except _WrongPin as exc:
            self._pin_rejected = True
            self._drop_session()
            raise self._unavailable(str(exc)) from None
        except _NotFound as exc:
            self._drop_session()
            raise self._unavailable(f"{exc} (after {first})") from None

    def _call(self, op: Callable[[PrivateKey], R]) -> R:
        """Blocking, from any thread: run op on the token thread (directly if already there)."""
        self._usable()
        return self._module.call(partial(self._with_key, op), self.call_timeout, self._what)

    def _raw_sign(self, key: PrivateKey, data: bytes, mechanism: Mechanism) -> bytes:
        """The one place that asks the token for a signature (tests wrap it)."""
        if not isinstance(key, SignMixin):
            raise self._unavailable("the key object does not allow signing (CKA_SIGN)")
        return key.sign(data, mechanism=mechanism)

    def _raw_decrypt(self, key: PrivateKey, ciphertext: bytes) -> bytes:
        if not isinstance(key, DecryptMixin):
            raise self._unavailable("the key object does not allow decryption (CKA_DECRYPT)")
        plaintext = key.decrypt(ciphertext, mechanism=Mechanism.RSA_PKCS)
        assert isinstance(plaintext, bytes)  # bytes in, bytes out (not the streaming form)
        return plaintext

    # -- TokenAccess: what the key objects of pkcs11_keys call back into ---------

    def token_sign(self, data: bytes, mechanism: Mechanism) -> bytes:
        """Blocking: a raw token signature; the calling key object verifies it."""
        return self._call(lambda key: self._raw_sign(key, data, mechanism))

    def bad_signature(self) -> SignerUnavailable:
        """Logged here so every refused signature is visible whichever key type produced it."""
        log.error("signer %s: the token returned a signature that does not verify", self.name)
        return self._unavailable("the token returned a signature that does not verify (hardware fault?); refused it")

    # -- the Signer protocol ---------------------------------------------------

    @property
    def key_type(self) -> str:
        """'ec', 'rsa' or 'ed25519'."""
        return self._key_type

    @property
    def token_thread_ident(self) -> int | None:
        """The id of the one thread that talks to this key's module (diagnostics, tests)."""
        return self._module.thread_id

    def public_key(self) -> CertificateIssuerPublicKeyTypes:
        assert self._public is not None
        return self._public

    def private_key(self) -> CertificateIssuerPrivateKeyTypes:
        """A cryptography key object whose sign() runs inside the token."""
        assert self._private is not None
        return self._private

    async def run(self, work: Callable[[], T]) -> T:
        """Run work on the token thread (so its sign() calls go straight to the token)."""
        self._usable()
        try:
            return await self._module.acall(work, self.call_timeout, self._what)
        except p11err.PKCS11Error as exc:
            raise self._unavailable(_describe(exc)) from exc

    def decrypt(self, ciphertext: bytes) -> bytes:
        """RSA PKCS#1 v1.5 decryption inside the token (SCEP RA). Blocking: use run().

        A ciphertext the token cannot decrypt raises ValueError, like cryptography.
        PKCS#1 v1.5 padding errors are an oracle (Bleichenbacher): callers must
        answer every ValueError the same way (e.g. continue with a random key).
        """
        if self._key_type != "rsa":
            raise SignerUnavailable(f"signer {self.name}: key cannot decrypt (not RSA)")

        def op(key: PrivateKey) -> bytes:
            try:
                return self._raw_decrypt(key, ciphertext)
            except _BAD_CIPHERTEXT:
                raise ValueError("decryption failed") from None
            except (p11err.GeneralError, p11err.FunctionFailed) as exc:
                # SoftHSM reports bad padding as a general failure. If the key
                # still answers, the ciphertext was bad, not the token.
                failure = exc
            try:
                key[Attribute.CLASS]
            except p11err.PKCS11Error:
                raise failure from None
            raise ValueError("decryption failed")

        return self._call(op)

    def _self_test(self) -> None:
        """Sign a fixed message; the key object verifies it before returning."""
        key = self._private
        if isinstance(key, ec.EllipticCurvePrivateKey):
            key.sign(_CHECK_MESSAGE, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPrivateKey):
            key.sign(_CHECK_MESSAGE, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PrivateKey):
            key.sign(_CHECK_MESSAGE)

    async def check(self) -> None:
        """Readiness: sign and verify a short message through the token now."""
        await self.run(self._self_test)

    async def close(self) -> None:
        """Close this signer's session (the module thread and login stay for others)."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._module.acall(self._drop_session, self.call_timeout, self._what)
        except SignerUnavailable:
            pass
