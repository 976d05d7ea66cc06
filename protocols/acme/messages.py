"""Typed ACME request payloads (RFC 8555 §7), decoded by codec.py."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ca.enrollment import Identifier


@dataclass(frozen=True)
class OrderIdentifier:
    """An identifier as ordered: wildcard names keep "*." here, authorizations drop it."""

    identifier: Identifier

    @property
    def wildcard(self) -> bool:
        return self.identifier.type == "dns" and self.identifier.value.startswith("*.")

    @property
    def base(self) -> Identifier:
        if self.wildcard:
            return Identifier("dns", self.identifier.value[2:])
        return self.identifier

    def to_json(self) -> dict[str, str]:
        return {"type": self.identifier.type, "value": self.identifier.value}


@dataclass(frozen=True)
class NewAccount:
    contact: tuple[str, ...]
    terms_agreed: bool
    only_return_existing: bool
    external_account_binding: dict[str, Any] | None


@dataclass(frozen=True)
class AccountUpdate:
    contact: tuple[str, ...] | None
    deactivate: bool


@dataclass(frozen=True)
class NewOrder:
    identifiers: tuple[OrderIdentifier, ...]
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    replaces: str | None
    profile: str | None


@dataclass(frozen=True)
class Finalize:
    csr_der: bytes


@dataclass(frozen=True)
class RevokeCert:
    certificate_der: bytes
    reason: int | None


@dataclass(frozen=True)
class KeyChangeInner:
    account: str
    old_key: dict[str, Any]
