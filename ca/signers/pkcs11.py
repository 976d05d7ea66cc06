"""Keys that never leave a PKCS#11 token (an HSM, SoftHSM, a smart card).

Threading: python-pkcs11 calls ``C_Initialize`` without OS locking, so a
module must never be entered from two threads at once. Every token call for
a module therefore runs on that module's one dedicated thread (a registry
keyed by the module's real path holds the thread, the loaded library and the
token logins). The event loop only awaits that thread, with a timeout.

Login: PKCS#11 login state belongs to the whole process, not to a session,
so each token gets one long-lived login session per process and every signer
opens its own public session beside it. Closing a signer's session therefore
never logs the other signers out.

Reliability: every signature is verified with the cached public key before
it is handed out (a fault-induced bad signature must never reach a
certificate), and a lost session is re-opened and the operation retried once.

``Pkcs11Signer.open`` is async (use ``open_blocking`` before an event loop
runs); ``generate_token_key`` is blocking, for the command line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import pkcs11
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding, PKCS1v15
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificateIssuerPublicKeyTypes,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    NoDigestInfo,
    Prehashed,
    encode_dss_signature,
)
from cryptography.utils import Buffer
from pkcs11 import exceptions as p11err
from pkcs11.constants import Attribute, MechanismFlag, ObjectClass, TokenFlag
from pkcs11.mechanisms import KeyType, Mechanism
from pkcs11.types import DecryptMixin, Object, PrivateKey, Session, SignMixin, Token

from ca.errors import ConfigError, SignerUnavailable
from ca.keys import parse_key_spec
from ca.signers.pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

__all__ = ["Pkcs11Signer", "generate_token_key", "shutdown_modules"]

T = TypeVar("T")
R = TypeVar("R")

log = logging.getLogger(__name__)

# Opening loads the library and logs in: real HSMs can take seconds for that.
OPEN_TIMEOUT = 30.0
# RSA-4096 generation on a slow token can take minutes.
KEYGEN_TIMEOUT = 300.0
_CHECK_MESSAGE = b"tetra-ca pkcs11 signer readiness check"

# Errors that mean "this session (or the token behind it) went away": the
# session is re-opened, the key found again and the operation retried once.
_RECOVERABLE: tuple[type[p11err.PKCS11Error], ...] = (
    p11err.SessionHandleInvalid,
    p11err.SessionClosed,
    p11err.DeviceRemoved,
    p11err.DeviceError,
    p11err.DeviceMemory,
    p11err.TokenNotPresent,
    p11err.TokenNotRecognised,
    p11err.GeneralError,
    p11err.FunctionFailed,
    p11err.UserNotLoggedIn,
    p11err.KeyHandleInvalid,
    p11err.ObjectHandleInvalid,
    p11err.OperationActive,
    p11err.OperationNotInitialized,
    p11err.SlotIDInvalid,
)
_BAD_PIN: tuple[type[p11err.PKCS11Error], ...] = (
    p11err.PinIncorrect,
    p11err.PinInvalid,
    p11err.PinLenRange,
    p11err.PinExpired,
    p11err.PinLocked,
)
# A bad ciphertext is the peer's fault, not the token's.
_BAD_CIPHERTEXT: tuple[type[p11err.PKCS11Error], ...] = (
    p11err.EncryptedDataInvalid,
    p11err.EncryptedDataLenRange,
    p11err.DataInvalid,
    p11err.DataLenRange,
)

# DER-encoded curve OIDs as tokens store them in CKA_EC_PARAMS.
_CURVES: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
}
_CURVE_PARAMS = {
    "p256": bytes.fromhex("06082a8648ce3d030107"),
    "p384": bytes.fromhex("06052b81040022"),
}
_ED25519_PARAMS = (bytes.fromhex("06032b6570"), b"\x13\x0cedwards25519")  # OID, or PKCS#11 3.0 name
# DER OIDs of the hashes a CA signature may use (DigestInfo, RFC 8017 section 9.2).
_HASH_OIDS = {
    "sha256": bytes.fromhex("0609608648016503040201"),
    "sha384": bytes.fromhex("0609608648016503040202"),
    "sha512": bytes.fromhex("0609608648016503040203"),
}


def _describe(exc: BaseException) -> str:
    """pkcs11 exceptions often carry no text: their class name is the message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _WrongPin(Exception):
    """The token refused the PIN (or it differs from the one already logged in)."""


class _NotFound(Exception):
    """No (or more than one) token or key matches the URI."""


@dataclass
class _Login:
    """Who logged the process in to a token: kept so a second signer's PIN can be compared."""

    pin: str = field(repr=False)
    session: Session | None = None


class _Module:
    """One PKCS#11 library in this process and the single thread allowed to call it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.thread_id: int | None = None
        self._lib: Pkcs11Lib | None = None
        self._logins: dict[tuple[str, bytes], _Login] = {}
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix=f"pkcs11-{os.path.basename(path)}",
            initializer=self._started,
        )

    def _started(self) -> None:
        self.thread_id = threading.get_ident()

    def on_thread(self) -> bool:
        return self.thread_id is not None and threading.get_ident() == self.thread_id

    def lib(self) -> Pkcs11Lib:
        """Token thread only: load and C_Initialize the library on first use."""
        if self._lib is None:
            try:
                self._lib = pkcs11.lib(self.path)
            except p11err.PKCS11Error as exc:
                raise ConfigError(f"PKCS#11 module {self.path}: cannot load: {exc}") from None
        return self._lib

    def call(self, fn: Callable[[], T], timeout: float, what: str) -> T:
        """Run fn on the token thread and wait for it (directly if already there)."""
        if self.on_thread():
            return fn()
        try:
            future = self.executor.submit(fn)
        except RuntimeError:
            raise SignerUnavailable(f"{what}: PKCS#11 module {self.path} is shut down") from None
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SignerUnavailable(f"{what}: token unavailable: no answer within {timeout:g}s") from None

    async def acall(self, fn: Callable[[], T], timeout: float, what: str) -> T:
        """Run fn on the token thread without blocking the event loop."""
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self.executor, fn)
        except RuntimeError:
            raise SignerUnavailable(f"{what}: PKCS#11 module {self.path} is shut down") from None
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            raise SignerUnavailable(f"{what}: token unavailable: no answer within {timeout:g}s") from None

    def login(self, token: Token, pin: str, force: bool = False) -> bool:
        """Token thread only: make sure the process is logged in to token.

        Returns True if this call performed a fresh C_Login. ``force`` drops
        the recorded login first (used when private objects became invisible,
        i.e. the token logged us out).
        """
        key = (token.manufacturer_id, token.serial)
        record = self._logins.get(key)
        if record is not None and not force:
            # The token would not check a second login: compare with the PIN
            # that logged in, so a wrong PIN in a second signer's config is caught.
            if not hmac.compare_digest(record.pin.encode(), pin.encode()):
                raise _WrongPin("the PIN differs from the one this token is logged in with")
            return False
        if record is not None:
            self._logins.pop(key)
            if record.session is not None:
                _close_quietly(record.session)
        try:
            session = token.open(user_pin=pin)
        except p11err.UserAlreadyLoggedIn:
            # Logged in by a session outside this registry; PKCS#11 cannot check the PIN now.
            self._logins[key] = _Login(pin, None)
            return False
        except _BAD_PIN as exc:
            raise _WrongPin(f"the token refused the PIN ({type(exc).__name__})") from None
        self._logins[key] = _Login(pin, session)
        return True

    def shutdown(self, timeout: float) -> None:
        """Log out, C_Finalize and stop the thread."""

        def finalize() -> None:
            for record in self._logins.values():
                if record.session is not None:
                    _close_quietly(record.session)
            self._logins.clear()
            if self._lib is not None:
                try:
                    self._lib.finalize()
                except p11err.PKCS11Error:
                    pass

        if self.on_thread():
            raise RuntimeError("shutdown_modules() called from a PKCS#11 token thread")
        try:
            self.executor.submit(finalize).result(timeout)
        except (concurrent.futures.TimeoutError, RuntimeError):
            log.warning("PKCS#11 module %s did not finalize within %gs", self.path, timeout)
        self.executor.shutdown(wait=False, cancel_futures=True)


_MODULES: dict[str, _Module] = {}
_MODULES_LOCK = threading.Lock()


def _module_for(module_path: str) -> _Module:
    """The process-wide module entry (library + thread) for a path, created once."""
    if not module_path:
        raise ConfigError("PKCS#11: no module path (set module_path or module-path in the URI)")
    real = os.path.realpath(module_path)
    if not os.path.isfile(real):
        raise ConfigError(f"PKCS#11 module {module_path}: no such file")
    with _MODULES_LOCK:
        module = _MODULES.get(real)
        if module is None:
            module = _MODULES[real] = _Module(real)
        return module


def shutdown_modules(timeout: float = 5.0) -> None:
    """Finalize every loaded PKCS#11 module and stop its thread (process shutdown, tests)."""
    with _MODULES_LOCK:
        modules = list(_MODULES.values())
        _MODULES.clear()
    for module in modules:
        module.shutdown(timeout)


def _close_quietly(session: Session) -> None:
    try:
        session.close()
    except p11err.PKCS11Error:
        pass


def _pin_text(pin: bytes | str) -> str:
    # python-pkcs11 wants text; never echo the PIN in a message.
    if isinstance(pin, bytes):
        try:
            pin = pin.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("PKCS#11: the PIN is not valid UTF-8") from None
    if not pin:
        raise ConfigError("PKCS#11: the PIN is empty")
    return pin


def _resolve(module_path: str, uri: str) -> tuple[_Module, Pkcs11Uri]:
    """Parse the URI and pick the module; URI errors become ConfigError."""
    try:
        parsed = parse_pkcs11_uri(uri)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if parsed.type not in (None, "private"):
        raise ConfigError(f"{parsed}: type={parsed.type}; a signer needs type=private")
    if parsed.object is None and parsed.id is None:
        raise ConfigError(f"{parsed}: name the key with object= (its label) and/or id=")
    if module_path and parsed.module_path and os.path.realpath(module_path) != os.path.realpath(parsed.module_path):
        raise ConfigError(f"{parsed}: module-path differs from the configured module {module_path}")
    return _module_for(module_path or parsed.module_path or ""), parsed


def _token_matches(lib: Pkcs11Lib, uri: Pkcs11Uri) -> bool:
    if uri.library_manufacturer is not None and lib.manufacturer_id != uri.library_manufacturer:
        return False
    if uri.library_description is not None and (lib.library_description != uri.library_description):
        return False
    if uri.library_version is not None:
        major, _, minor = uri.library_version.partition(".")
        if lib.library_version != (int(major), int(minor or "0")):
            return False
    return True


def _find_token(lib: Pkcs11Lib, uri: Pkcs11Uri) -> Token:
    """The one initialised token the URI names (token thread only)."""
    if not _token_matches(lib, uri):
        raise _NotFound("the PKCS#11 library does not match the URI's library-* attributes")
    found: list[Token] = []
    for slot in lib.get_slots(token_present=True):
        if uri.slot_id is not None and slot.slot_id != uri.slot_id:
            continue
        if uri.slot_description is not None and slot.slot_description != uri.slot_description:
            continue
        if uri.slot_manufacturer is not None and slot.manufacturer_id != uri.slot_manufacturer:
            continue
        token = slot.get_token()
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            continue
        if uri.token is not None and token.label != uri.token:
            continue
        if uri.serial is not None and token.serial != uri.serial.encode():
            continue
        if uri.manufacturer is not None and token.manufacturer_id != uri.manufacturer:
            continue
        if uri.model is not None and token.model != uri.model:
            continue
        found.append(token)
    if not found:
        raise _NotFound("no initialised token matches the URI")
    if len(found) > 1:
        labels = ", ".join(t.label for t in found)
        raise _NotFound(f"{len(found)} tokens match the URI ({labels}); add token= or serial=")
    return found[0]


def _key_template(uri: Pkcs11Uri, object_class: ObjectClass) -> dict[Attribute, Any]:
    attrs: dict[Attribute, Any] = {Attribute.CLASS: object_class}
    if uri.object is not None:
        attrs[Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[Attribute.ID] = uri.id
    return attrs


def _find_objects(session: Session, attrs: dict[Attribute, Any]) -> list[Object]:
    # Drain the search so no FindObjects operation stays active on the session.
    return list(session.get_objects(attrs))


def _der_octet_string(data: bytes) -> bytes | None:
    """The payload of a DER OCTET STRING, or None if data is not exactly one."""
    if len(data) < 2 or data[0] != 0x04:
        return None
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or len(data) < 2 + count:
            return None
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    return data[offset:] if offset + length == len(data) else None


def _point(raw: bytes, size: int) -> bytes:
    """CKA_EC_POINT is DER-wrapped on most tokens and raw on a few: accept both."""
    inner = _der_octet_string(raw)
    if inner is not None and len(inner) == size:
        return inner
    if len(raw) == size:
        return raw
    raise _NotFound(f"unexpected CKA_EC_POINT encoding ({len(raw)} bytes)")


def _public_from_token(session: Session, key: PrivateKey) -> tuple[str, CertificateIssuerPublicKeyTypes]:
    """The key's type and public half, from its public-key object or its certificate."""
    match = {Attribute.ID: key.id, Attribute.LABEL: key.label}
    publics = _find_objects(session, {**match, Attribute.CLASS: ObjectClass.PUBLIC_KEY})
    if len(publics) != 1:
        publics = _find_objects(session, {Attribute.ID: key.id, Attribute.CLASS: ObjectClass.PUBLIC_KEY})
    key_type = key.key_type
    if key_type == KeyType.RSA:
        source: Object = publics[0] if len(publics) == 1 else key
        attrs = source.get_attributes([Attribute.MODULUS, Attribute.PUBLIC_EXPONENT])
        n = int.from_bytes(attrs[Attribute.MODULUS], "big")
        e = int.from_bytes(attrs[Attribute.PUBLIC_EXPONENT], "big")
        return "rsa", rsa.RSAPublicNumbers(e, n).public_key()
    if len(publics) == 1:
        attrs = publics[0].get_attributes([Attribute.EC_PARAMS, Attribute.EC_POINT])
        params, raw = bytes(attrs[Attribute.EC_PARAMS]), bytes(attrs[Attribute.EC_POINT])
        if key_type == KeyType.EC:
            curve = _CURVES.get(params)
            if curve is None:
                raise _NotFound(f"unsupported EC curve (CKA_EC_PARAMS {params.hex()})")
            size = 1 + 2 * ((curve.key_size + 7) // 8)
            return "ec", ec.EllipticCurvePublicKey.from_encoded_point(curve, _point(raw, size))
        if key_type == KeyType.EC_EDWARDS:
            if params not in _ED25519_PARAMS:
                raise _NotFound(f"unsupported Edwards curve (CKA_EC_PARAMS {params.hex()})")
            return "ed25519", ed25519.Ed25519PublicKey.from_public_bytes(_point(raw, 32))
        raise _NotFound(f"unsupported key type {key_type!r}")
    certs = _find_objects(session, {Attribute.ID: key.id, Attribute.CLASS: ObjectClass.CERTIFICATE})
    if len(certs) == 1:
        public = x509.load_der_x509_certificate(bytes(certs[0][Attribute.VALUE])).public_key()
        if isinstance(public, ec.EllipticCurvePublicKey) and key_type == KeyType.EC:
            return "ec", public
        if isinstance(public, ed25519.Ed25519PublicKey) and key_type == KeyType.EC_EDWARDS:
            return "ed25519", public
    raise _NotFound("no public key or certificate object with the key's id to read it from")


class Pkcs11Signer:
    """A `Signer` whose private key lives in a PKCS#11 token and never leaves it.

    Create it with ``await Pkcs11Signer.open(...)`` (or ``open_blocking``).
    Every token call runs on the module's single thread; see the module docstring.
    """

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

    def _token_sign(self, data: bytes, mechanism: Mechanism) -> bytes:
        return self._call(lambda key: self._raw_sign(key, data, mechanism))

    def _bad_signature(self) -> SignerUnavailable:
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


# -- cryptography key objects --------------------------------------------------


def _hash_for_token(data: bytes, algorithm: Prehashed | hashes.HashAlgorithm) -> tuple[bytes, hashes.HashAlgorithm]:
    """Hash in Python (the token only sees the digest); only SHA-2 256/384/512."""
    if isinstance(algorithm, Prehashed):
        algo = algorithm._algorithm  # cryptography keeps the hash only privately
        if len(data) != algo.digest_size:
            raise ValueError("prehashed data does not match the digest size")
        digest = data
    else:
        algo = algorithm
        hasher = hashes.Hash(algo)
        hasher.update(data)
        digest = hasher.finalize()
    if algo.name not in _HASH_OIDS:
        raise UnsupportedAlgorithm(f"hash {algo.name} is not supported for token keys; use sha256, sha384 or sha512")
    return digest, algo


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _digest_info(algorithm: hashes.HashAlgorithm, digest: bytes) -> bytes:
    """The DER DigestInfo that PKCS#1 v1.5 signs (RFC 8017 section 9.2)."""
    algorithm_id = _der(0x30, _HASH_OIDS[algorithm.name] + b"\x05\x00")
    return _der(0x30, algorithm_id + _der(0x04, digest))


def _not_extractable() -> TypeError:
    return TypeError("the private key lives in a PKCS#11 token and cannot be exported")


class TokenEllipticCurveKey(ec.EllipticCurvePrivateKey):
    """ECDSA through CKM_ECDSA: the digest goes in, r||s comes out and is DER-encoded here."""

    def __init__(self, signer: Pkcs11Signer, public: ec.EllipticCurvePublicKey) -> None:
        self._signer = signer
        self._public = public

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedAlgorithm("token EC keys sign with ECDSA only")
        if signature_algorithm.deterministic_signing:
            raise UnsupportedAlgorithm("deterministic ECDSA (RFC 6979) is not available from a PKCS#11 token")
        digest, algo = _hash_for_token(bytes(data), signature_algorithm.algorithm)
        raw = self._signer._token_sign(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        if not raw or len(raw) % 2:
            raise self._signer._bad_signature()
        signature = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        try:
            self._public.verify(signature, digest, ec.ECDSA(Prehashed(algo)))
        except InvalidSignature:
            raise self._signer._bad_signature() from None
        return signature

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise NotImplementedError("ECDH is not offered for CA keys in a PKCS#11 token")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        raise _not_extractable()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _not_extractable()

    def __copy__(self) -> TokenEllipticCurveKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> TokenEllipticCurveKey:
        return self


class TokenRSAKey(rsa.RSAPrivateKey):
    """PKCS#1 v1.5 through CKM_RSA_PKCS over a DigestInfo built here."""

    def __init__(self, signer: Pkcs11Signer, public: rsa.RSAPublicKey) -> None:
        self._signer = signer
        self._public = public

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: Prehashed | hashes.HashAlgorithm | NoDigestInfo,
    ) -> bytes:
        if not isinstance(padding, PKCS1v15):
            raise UnsupportedAlgorithm("token RSA keys sign with PKCS#1 v1.5 only")
        data = bytes(data)
        if isinstance(algorithm, NoDigestInfo):
            signature = self._signer._token_sign(data, Mechanism.RSA_PKCS)
            try:
                recovered = self._public.recover_data_from_signature(signature, PKCS1v15(), None)
            except InvalidSignature:
                raise self._signer._bad_signature() from None
            if not hmac.compare_digest(recovered, data):
                raise self._signer._bad_signature()
            return signature
        digest, algo = _hash_for_token(data, algorithm)
        signature = self._signer._token_sign(_digest_info(algo, digest), Mechanism.RSA_PKCS)
        try:
            self._public.verify(signature, digest, PKCS1v15(), Prehashed(algo))
        except InvalidSignature:
            raise self._signer._bad_signature() from None
        return signature

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        if not isinstance(padding, PKCS1v15):
            raise UnsupportedAlgorithm("token RSA keys decrypt PKCS#1 v1.5 only")
        return self._signer.decrypt(bytes(ciphertext))

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        raise _not_extractable()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _not_extractable()

    def __copy__(self) -> TokenRSAKey:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> TokenRSAKey:
        return self


class TokenEd25519Key(ed25519.Ed25519PrivateKey):
    """Ed25519 through CKM_EDDSA: the whole message goes to the token (no prehash)."""

    def __init__(self, signer: Pkcs11Signer, public: ed25519.Ed25519PublicKey) -> None:
        self._signer = signer
        self._public = public

    def sign(self, data: Buffer) -> bytes:
        message = bytes(data)
        signature = self._signer._token_sign(message, Mechanism.EDDSA)
        try:
            self._public.verify(signature, message)
        except InvalidSignature:
            raise self._signer._bad_signature() from None
        return signature

    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._public

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        raise _not_extractable()

    def private_bytes_raw(self) -> bytes:
        raise _not_extractable()

    def __copy__(self) -> TokenEd25519Key:
        return self

    def __deepcopy__(self, memo: dict[Any, Any]) -> TokenEd25519Key:
        return self


# -- key generation ------------------------------------------------------------


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
