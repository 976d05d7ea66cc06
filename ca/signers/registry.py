"""Opening a key from its config: one spec type, one parser, one registry of backends.

The issuing CAs, the registration authorities and the OCSP responder name
their keys the same way and open them through `open_signer`, so a key's
config is validated, and a backend added, in exactly one place. Secrets are
never part of a spec: it names the environment variable or file holding
them, read only when the key is opened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ca.config_secrets import read_secret
from ca.errors import ConfigError
from ca.signers.base import Signer
from ca.signers.software import SoftwareSigner
from ca.tomlread import Table

__all__ = ["BACKENDS", "Backend", "SignerSpec", "open_signer", "parse_signer_spec"]

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class SignerSpec:
    """Where one key lives and how to unlock it (the fields its backend does not use stay empty)."""

    name: str  # the signer's name in logs and errors
    backend: str  # a key of BACKENDS: "software" | "pkcs11"
    key_file: Path | None = None  # software: encrypted PKCS#8 PEM
    passphrase_env: str = ""
    passphrase_file: str = ""
    module: str = ""  # pkcs11: the module (.so) path
    uri: str = ""  # pkcs11: RFC 7512 URI of the key
    pin_env: str = ""
    pin_file: str = ""
    timeout_seconds: float = DEFAULT_TIMEOUT  # pkcs11: bound on every token call


Reader = Callable[[Table, str, str], SignerSpec]
Opener = Callable[[SignerSpec], Awaitable[Signer]]


@dataclass(frozen=True)
class Backend:
    """How one backend reads its keys from a config table, and how it opens a key."""

    read: Reader  # (table, signer name, name of the key-file key) -> spec
    open: Opener


def _file(table: Table, key: str, *, required: bool = False) -> str:
    """A path key; relative paths are taken from the config file's directory."""
    text = table.get(key, str) if required else table.get(key, str, "")
    if required and not text:
        raise table.error(key, "must name a file")
    if not text or Path(text).is_absolute() or not table.source:
        return text
    return str(Path(table.source).parent / text)


def _read_software(table: Table, name: str, key_file_key: str) -> SignerSpec:
    spec = SignerSpec(
        name,
        "software",
        key_file=Path(_file(table, key_file_key, required=True)),
        passphrase_env=table.get("passphrase_env", str, ""),
        passphrase_file=_file(table, "passphrase_file"),
    )
    if not spec.passphrase_env and not spec.passphrase_file:
        raise table.error("passphrase_env", "set passphrase_env or passphrase_file")
    return spec


def _read_pkcs11(table: Table, name: str, key_file_key: str) -> SignerSpec:
    if table.has("pin"):
        raise table.error("pin", "PINs are never written in the config; use pin_env or pin_file")
    spec = SignerSpec(
        name,
        "pkcs11",
        module=table.get("module", str),
        uri=table.get("uri", str),
        pin_env=table.get("pin_env", str, ""),
        pin_file=_file(table, "pin_file"),
        timeout_seconds=table.get("timeout_seconds", float, DEFAULT_TIMEOUT),
    )
    if not spec.pin_env and not spec.pin_file:
        raise table.error("pin_env", "set pin_env or pin_file")
    if spec.timeout_seconds <= 0:
        raise table.error("timeout_seconds", "must be positive")
    return spec


async def _open_software(spec: SignerSpec) -> Signer:
    if spec.key_file is None:
        raise ConfigError(f"signer {spec.name}: backend software needs key_file")
    secret = read_secret(spec.passphrase_env, spec.passphrase_file, f"signer {spec.name} passphrase")
    return SoftwareSigner.from_file(spec.name, spec.key_file, secret)


async def _open_pkcs11(spec: SignerSpec) -> Signer:
    # Imported on first use, not to break a cycle (there is none): python-pkcs11 is a C
    # extension that processes with only software keys (most CLI commands, tests) never load.
    from ca.signers.pkcs11 import Pkcs11Signer

    pin = read_secret(spec.pin_env, spec.pin_file, f"signer {spec.name} PIN")
    return await Pkcs11Signer.open(spec.name, spec.module, spec.uri, pin, call_timeout=spec.timeout_seconds)


BACKENDS: Mapping[str, Backend] = MappingProxyType(
    {
        "software": Backend(_read_software, _open_software),
        "pkcs11": Backend(_read_pkcs11, _open_pkcs11),
    }
)


def _backend(name: str, backend: str) -> Backend:
    found = BACKENDS.get(backend)
    if found is None:
        raise ConfigError(f"signer {name}: unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    return found


def parse_signer_spec(
    table: Table, name: str, backend: str | None = None, *, key_file_key: str = "key_file"
) -> SignerSpec:
    """Read one key's table ([signers.NAME], or [ocsp.responder_key]) into a spec.

    ``backend`` None reads it from the table's ``backend`` key; a caller whose section
    names the backend its own way (the OCSP ``source``) maps it and passes it in, and
    ``key_file_key`` names the key-file key where it differs (OCSP's ``file``).
    Errors are ConfigErrors naming the file and key. The caller calls ``table.finish()``.
    """
    if backend is None:
        backend = table.choice("backend", tuple(BACKENDS))
    return _backend(name, backend).read(table, name, key_file_key)


async def open_signer(spec: SignerSpec) -> Signer:
    """Open the key: ConfigError for a bad spec, secret, key file, module, URI or PIN;
    SignerUnavailable when a token cannot be reached."""
    return await _backend(spec.name, spec.backend).open(spec)
