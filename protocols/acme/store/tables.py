"""The ACME tables, declared on the core's `Base` so one Alembic history migrates them with the core's,
and `status_move`, the one shape of UPDATE that moves an account, order, authorization or challenge."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Table, Text, Update, bindparam, update
from sqlalchemy.orm import Mapped, mapped_column

from ca.state_store import Base, Id, UTCDateTime


class AcmeAccountRow(Base):
    __tablename__ = "acme_accounts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    thumbprint: Mapped[str] = mapped_column(String(64), unique=True)  # RFC 7638, one account per key
    jwk: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))  # valid | deactivated | revoked
    contact: Mapped[str] = mapped_column(Text, default="[]")
    tos_agreed: Mapped[bool] = mapped_column(Boolean, default=False)
    eab_key_id: Mapped[str | None] = mapped_column(String(255))
    eab_profile: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    remote: Mapped[str] = mapped_column(String(64), default="")


class AcmeOrderRow(Base):
    __tablename__ = "acme_orders"
    __table_args__ = (
        Index("ix_acme_orders_account", "account_id"),
        Index("ix_acme_orders_replaces", "replaces_cert_id"),
        Index("ix_acme_orders_certificate", "certificate_id"),
        Index("ix_acme_orders_status", "status", "id"),  # the stuck-order sweeper's look-up (ST-02)
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("acme_accounts.id"))
    profile: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | ready | processing | valid | invalid
    identifiers: Mapped[str] = mapped_column(Text)  # JSON ["dns:a.example", "dns:*.example"]
    authz_ids: Mapped[str] = mapped_column(Text)  # JSON [1, 2]
    not_before: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    not_after: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    replaces: Mapped[str | None] = mapped_column(String(255))  # RFC 9773 certID as sent
    replaces_cert_id: Mapped[int | None] = mapped_column(Id)
    error: Mapped[str | None] = mapped_column(Text)  # problem document JSON
    certificate_id: Mapped[int | None] = mapped_column(Id, ForeignKey("certificates.id"))
    request_id: Mapped[int | None] = mapped_column(Id)  # manual approval: the core's pending request
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    processing_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    csr_key: Mapped[str | None] = mapped_column(String(64))  # SHA-256 of the finalize CSR's key (recovery)


class AcmeAuthzRow(Base):
    __tablename__ = "acme_authzs"
    __table_args__ = (Index("ix_acme_authzs_reuse", "account_id", "identifier_value", "status"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("acme_accounts.id"))
    identifier_type: Mapped[str] = mapped_column(String(8))
    identifier_value: Mapped[str] = mapped_column(String(255))
    wildcard: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16))  # pending | valid | invalid | deactivated | revoked
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    validated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    method: Mapped[str | None] = mapped_column(String(16))  # the challenge type that validated it


class AcmeChallengeRow(Base):
    __tablename__ = "acme_challenges"
    __table_args__ = (
        Index("ix_acme_challenges_authz", "authz_id"),
        Index("ix_acme_challenges_status", "status", "processing_at"),  # the challenge sweeper's look-up (ST-19)
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    authz_id: Mapped[int] = mapped_column(Id, ForeignKey("acme_authzs.id"))
    type: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | processing | valid | invalid
    validated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    processing_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # when its validation last started
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")  # validations started (ST-19)


class AcmeNonceRow(Base):
    """Issued, not yet used nonces; a row is deleted by the one request that redeems it."""

    __tablename__ = "acme_nonces"
    __table_args__ = (Index("ix_acme_nonces_expires", "expires_at"),)

    value: Mapped[str] = mapped_column(String(43), primary_key=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AcmeRenewNowRow(Base):
    """An operator's (or rotation's) request that certificates renew now, for ARI (RFC 9773)."""

    __tablename__ = "acme_renew_now"
    __table_args__ = (Index("ix_acme_renew_now_scope", "scope", "value"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(16))  # serial | profile | issuer
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(255))


accounts_t = cast(Table, AcmeAccountRow.__table__)
orders_t = cast(Table, AcmeOrderRow.__table__)
authzs_t = cast(Table, AcmeAuthzRow.__table__)
challenges_t = cast(Table, AcmeChallengeRow.__table__)
nonces_t = cast(Table, AcmeNonceRow.__table__)
renew_now_t = cast(Table, AcmeRenewNowRow.__table__)


def status_move(table: Table, key: str, from_status: str | None, to_status: str | None, *bound: str) -> Update:
    """UPDATE the row whose id is the parameter ``key`` to ``to_status``, only while its status is
    still ``from_status`` (None: whatever it is), setting the ``bound`` columns from parameters named
    ``v_<column>``. A status moves by compare-and-set, so concurrent requests and processes decide
    it once (RFC 8555 §7.1.6); rowcount 1 says this statement was the one that moved it."""
    where = [table.c.id == bindparam(key)]
    if from_status is not None:
        where.append(table.c.status == from_status)
    values: dict[str, Any] = {column: bindparam(f"v_{column}") for column in bound}
    if to_status is not None:
        values["status"] = to_status
    return update(table).where(*where).values(values)


__all__ = [
    "AcmeAccountRow",
    "AcmeAuthzRow",
    "AcmeChallengeRow",
    "AcmeNonceRow",
    "AcmeOrderRow",
    "AcmeRenewNowRow",
    "accounts_t",
    "authzs_t",
    "challenges_t",
    "nonces_t",
    "orders_t",
    "renew_now_t",
    "status_move",
]
