"""The PKCS#11 module registry: one library, one thread and one set of logins per module.

Threading: python-pkcs11 calls ``C_Initialize`` without OS locking, so a
module must never be entered from two threads at once. Every token call for
a module therefore runs on that module's one dedicated thread (a registry
keyed by the module's real path holds the thread, the loaded library and the
token logins). The event loop only awaits that thread, with a timeout.

Login: PKCS#11 login state belongs to the whole process, not to a session,
so each token gets one long-lived login session per process and every signer
opens its own public session beside it. Closing a signer's session therefore
never logs the other signers out.

Also here: which token errors are worth a reconnect-and-retry (the retry
itself is `Pkcs11Signer._with_key`), PIN and URI checks.
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
from typing import TYPE_CHECKING, TypeVar

import pkcs11
from pkcs11 import exceptions as p11err
from pkcs11.types import Session, Token

from ca.errors import ConfigError, SignerUnavailable
from ca.signers.pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

T = TypeVar("T")

# The logger of the original single module, so log records keep their name.
log = logging.getLogger("ca.signers.pkcs11")

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
