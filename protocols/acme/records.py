"""What the ACME handlers and the codec see of stored state: plain frozen records.

No SQL here, so the sans-IO codec (protocols/acme/codec.py) can encode a record
without importing the database layer; the stores (protocols/acme/store/) turn
rows into these records.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ca.enrollment import Identifier
from protocols.acme.reuse import br_usable_until


@dataclass(frozen=True)
class Account:
    id: int
    thumbprint: str
    jwk: str
    status: str
    contact: tuple[str, ...]
    tos_agreed: bool
    eab_key_id: str | None
    eab_profile: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class Challenge:
    id: int
    authz_id: int
    type: str
    token: str
    status: str
    validated_at: dt.datetime | None
    error: dict[str, Any] | None
    processing_at: dt.datetime | None = None  # when its validation last started
    attempts: int = 0  # validations started; a crash-interrupted one is resumed while below the cap (ST-19)


@dataclass(frozen=True)
class Authz:
    id: int
    account_id: int
    identifier: Identifier  # the base name: "*." is dropped for wildcards (RFC 8555 §7.1.4)
    wildcard: bool
    status: str
    created_at: dt.datetime
    expires_at: dt.datetime
    validated_at: dt.datetime | None
    method: str | None
    challenges: tuple[Challenge, ...]

    def current_status(self, now: dt.datetime) -> str:
        if self.status in ("pending", "valid") and self.expires_at <= now:
            return "expired"
        # Also for rows stored before the BR period shortened (ACME-24).
        if self.status == "valid" and self.validated_at is not None and now >= br_usable_until(self.validated_at):
            return "expired"
        return self.status

    @property
    def proves(self) -> Identifier:
        """The certificate name a valid authorization covers."""
        if self.wildcard:
            return Identifier(self.identifier.type, "*." + self.identifier.value)
        return self.identifier


@dataclass(frozen=True)
class Order:
    id: int
    account_id: int
    profile: str
    status: str
    identifiers: tuple[Identifier, ...]
    authz_ids: tuple[int, ...]
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    replaces: str | None
    replaces_cert_id: int | None
    error: dict[str, Any] | None
    certificate_id: int | None
    request_id: int | None
    created_at: dt.datetime
    expires_at: dt.datetime
    processing_at: dt.datetime | None
    csr_key: str | None = None


@dataclass(frozen=True)
class NewAuthz:
    """What newOrder needs: one authorization per identifier, with its challenge types and tokens."""

    identifier: Identifier
    wildcard: bool
    challenges: tuple[tuple[str, str], ...]  # (type, token)


__all__ = ["Account", "Authz", "Challenge", "NewAuthz", "Order"]
