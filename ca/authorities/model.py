"""`Authority`: one CA certificate generation as the registry holds it, and its `State`."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from cryptography import x509

from ca.signers.registry import SignerSpec


class Kind(StrEnum):
    ISSUING = "issuing"  # signs leaves, OCSP and CRLs in the server
    ROOT = "root"  # a trust anchor; its key stays offline and signs only from the CLI


class State(StrEnum):
    PENDING = "pending"  # a key and a CSR exist; the certificate has not been imported
    STAGED = "staged"  # certified, not (yet) the generation that issues
    ACTIVE = "active"  # the generation its family issues from now
    RETIRED = "retired"  # replaced by a later generation; still signs OCSP and CRLs for its own
    REVOKED = "revoked"  # its parent revoked it: never issues again; its leaves stay answered


# The SignerSpec fields a registry row may set; secrets are never stored, only where they are.
_KEY_FIELDS = ("backend", "key_file", "passphrase_env", "passphrase_file", "module", "uri", "pin_env", "pin_file")


@dataclass(frozen=True)
class KeyLocation:
    """Where a generation's key lives when it is not its family's configured signer."""

    backend: str
    key_file: str = ""  # software: relative to the config file's directory
    passphrase_env: str = ""
    passphrase_file: str = ""
    module: str = ""
    uri: str = ""
    pin_env: str = ""
    pin_file: str = ""

    def to_json(self) -> str:
        return json.dumps({k: getattr(self, k) for k in _KEY_FIELDS if getattr(self, k)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> KeyLocation:
        data: dict[str, Any] = json.loads(text)
        return cls(**{k: str(data[k]) for k in _KEY_FIELDS if k in data})

    @classmethod
    def of_spec(cls, spec: SignerSpec, config_dir: Path) -> KeyLocation:
        """The location of a configured key (a same-named file or label is then changed by the caller).
        The config hands its paths over resolved; the registry keeps them relative to its directory."""

        def relative(path: Path | str | None) -> str:
            return os.path.relpath(Path(path).resolve(), config_dir.resolve()) if path else ""

        return cls(
            spec.backend,
            relative(spec.key_file),
            spec.passphrase_env,
            relative(spec.passphrase_file),
            spec.module,
            spec.uri,
            spec.pin_env,
            relative(spec.pin_file),
        )

    def spec(self, name: str, config_dir: Path) -> SignerSpec:
        return SignerSpec(
            name=name,
            backend=self.backend,
            key_file=(config_dir / self.key_file) if self.key_file else None,
            passphrase_env=self.passphrase_env,
            passphrase_file=str(config_dir / self.passphrase_file) if self.passphrase_file else "",
            module=self.module,
            uri=self.uri,
            pin_env=self.pin_env,
            pin_file=str(config_dir / self.pin_file) if self.pin_file else "",
        )

    def describe(self, config_dir: Path | None = None) -> str:
        """For people: the URI, or the key file (under ``config_dir`` when given, as the config's own are shown)."""
        if self.backend == "pkcs11":
            return f"pkcs11 {self.uri}"
        return f"file {config_dir / self.key_file if config_dir is not None else self.key_file}"


@dataclass(frozen=True)
class Authority:
    """One CA certificate generation. ``der`` is None while a CSR awaits its certificate."""

    name: str
    family: str
    generation: int
    kind: Kind
    parent: str | None
    der: bytes | None
    key: KeyLocation | None  # None: the key of the family's configured signer
    activate_at: dt.datetime | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None
    chain_pem: bytes = b""  # certificates above it that are not ours (an external root's chain)
    links_pem: bytes = b""  # root rollover: newWithOld, then oldWithNew (RFC 4210 §4.4)

    @cached_property
    def certificate(self) -> x509.Certificate:
        if self.der is None:
            raise ValueError(f"CA {self.name} has no certificate yet")
        return x509.load_der_x509_certificate(self.der)

    @cached_property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return tuple(x509.load_pem_x509_certificates(self.chain_pem)) if self.chain_pem else ()

    @cached_property
    def links(self) -> tuple[x509.Certificate, ...]:
        return tuple(x509.load_pem_x509_certificates(self.links_pem)) if self.links_pem else ()


def generation_name(family: str, generation: int) -> str:
    """``issuing-ca`` for the first generation, ``issuing-ca.2`` after: the issuer name in the
    store and in every URL (/crl/issuing-ca.2.crl, /ca/issuing-ca.2.cer)."""
    return family if generation == 1 else f"{family}.{generation}"
