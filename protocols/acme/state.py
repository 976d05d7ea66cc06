"""ACME state in the shared database: accounts, orders, authorizations, challenges, nonces.

The tables live on `ca.store.tables.Base` so one Alembic history (0003_acme)
migrates them, and every server process sees the same state (ST-15). All SQL of
this protocol is in this module; handlers see frozen records.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from ca.audit import AuditEvent
from ca.enrollment import Identifier
from ca.state_store import StateDatabase, Tx
from ca.store.tables import Base, Id, UTCDateTime, certificates
from protocols.acme.ratelimit import NO_CHARGES, Charges, Refusal
from protocols.acme.reuse import br_usable_until


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
    __table_args__ = (Index("ix_acme_challenges_authz", "authz_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    authz_id: Mapped[int] = mapped_column(Id, ForeignKey("acme_authzs.id"))
    type: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | processing | valid | invalid
    validated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


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

L = TypeVar("L")
Loader = Callable[[Connection, "Account"], Any]  # a read inside the nonce's transaction (redeem_nonce_for)

# Statements every request runs, built once: building a statement and its cache key per call
# costs more than SQLite takes to run it.
# A reused authorization must stay valid at least this long, so the order it serves can be finished.
REUSE_MARGIN = dt.timedelta(hours=1)

_REDEEM_NONCE = delete(nonces_t).where(
    nonces_t.c.value == bindparam("nonce_value"), nonces_t.c.expires_at > bindparam("nonce_now")
)
_ACCOUNT_BY_ID = select(accounts_t).where(accounts_t.c.id == bindparam("account_id"))
_ORDER_BY_ID = select(orders_t).where(orders_t.c.id == bindparam("order_id"))
_ORDER_BY_CERT = select(orders_t).where(orders_t.c.certificate_id == bindparam("certificate_id"))
# An authorization with its challenges in one statement (one row per challenge, challenge
# columns prefixed "c_"); the challenge's own id picks its authorization for a challenge read.
_CHALLENGE_COLUMNS = [c.label(f"c_{c.name}") for c in challenges_t.c]
_AUTHZS_WITH_CHALLS = (
    select(authzs_t, *_CHALLENGE_COLUMNS)
    .outerjoin(challenges_t, challenges_t.c.authz_id == authzs_t.c.id)
    .where(authzs_t.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(challenges_t.c.id)
)
_picked = challenges_t.alias("picked")
_AUTHZ_WITH_CHALLS_BY_CHALLENGE = (
    select(authzs_t, *_CHALLENGE_COLUMNS)
    .join(_picked, _picked.c.authz_id == authzs_t.c.id)
    .outerjoin(challenges_t, challenges_t.c.authz_id == authzs_t.c.id)
    .where(_picked.c.id == bindparam("challenge_id"))
    .order_by(challenges_t.c.id)
)
_CERT_BY_ID = select(certificates).where(certificates.c.id == bindparam("certificate_id"))
_CHALLS_BUSY = (
    select(func.count())
    .select_from(challenges_t)
    .where(challenges_t.c.authz_id == bindparam("authz_id"), challenges_t.c.status != "pending")
)
_AUTHZ_LIVE = select(authzs_t.c.id).where(
    authzs_t.c.id == bindparam("authz_id"), authzs_t.c.status == "pending", authzs_t.c.expires_at > bindparam("now")
)
_START_CHALLENGE = (
    update(challenges_t)
    .where(challenges_t.c.id == bindparam("challenge_id"), challenges_t.c.status == "pending")
    .values(status="processing")
)
_FINISH_CHALLENGE = (
    update(challenges_t)
    .where(challenges_t.c.id == bindparam("challenge_id"))
    .values(status=bindparam("v_status"), validated_at=bindparam("v_validated_at"), error=bindparam("v_error"))
)
_AUTHZ_VALID = (
    update(authzs_t)
    .where(authzs_t.c.id == bindparam("authz_id"), authzs_t.c.status == "pending")
    .values(
        status="valid",
        validated_at=bindparam("v_validated_at"),
        method=bindparam("v_method"),
        expires_at=bindparam("v_expires_at"),
    )
)
_AUTHZ_INVALID = (
    update(authzs_t)
    .where(authzs_t.c.id == bindparam("authz_id"), authzs_t.c.status == "pending")
    .values(status="invalid")
)
_ORDER_ISSUED = (
    update(orders_t)
    .where(orders_t.c.id == bindparam("order_id"), orders_t.c.status == "processing")
    .values(status="valid", certificate_id=bindparam("v_certificate_id"))
)
_SET_ORDER: dict[tuple[str, ...], Any] = {}
_ORDER_COLUMNS = (
    "account_id",
    "profile",
    "status",
    "identifiers",
    "authz_ids",
    "not_before",
    "not_after",
    "replaces",
    "replaces_cert_id",
    "created_at",
    "expires_at",
)
_INSERT_ORDER = insert(orders_t).values({c: bindparam(c) for c in _ORDER_COLUMNS}).returning(orders_t.c.id)
_INSERT_AUTHZ = (
    insert(authzs_t)
    .values(
        account_id=bindparam("account_id"),
        identifier_type=bindparam("identifier_type"),
        identifier_value=bindparam("identifier_value"),
        wildcard=bindparam("wildcard"),
        status="pending",
        created_at=bindparam("created_at"),
        expires_at=bindparam("expires_at"),
    )
    .returning(authzs_t.c.id)
)
_INSERT_CHALLENGE = insert(challenges_t).values(
    authz_id=bindparam("authz_id"), type=bindparam("type"), token=bindparam("token"), status="pending"
)


def _insert_authz(conn: Connection, account_id: int, spec: NewAuthz, now: dt.datetime, expires: dt.datetime) -> int:
    """A pending authorization with its challenges; its id."""
    authz_id = conn.execute(
        _INSERT_AUTHZ,
        {
            "account_id": account_id,
            "identifier_type": spec.identifier.type,
            "identifier_value": spec.identifier.value,
            "wildcard": spec.wildcard,
            "created_at": now,
            "expires_at": expires,
        },
    ).scalar_one()
    conn.execute(
        _INSERT_CHALLENGE,
        [{"authz_id": authz_id, "type": kind, "token": token} for kind, token in spec.challenges],
    )
    return int(authz_id)


def _set_order_statement(columns: tuple[str, ...]) -> Any:
    """The order compare-and-set for one set of changed columns, built once per set."""
    statement = _SET_ORDER.get(columns)
    if statement is None:
        statement = (
            update(orders_t)
            .where(
                orders_t.c.id == bindparam("order_id"),
                orders_t.c.status.in_(bindparam("from_statuses", expanding=True)),
            )
            .values({c: bindparam(f"v_{c}") for c in columns})
        )
        _SET_ORDER[columns] = statement
    return statement


# -- records ------------------------------------------------------------------------------
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

    @classmethod
    def from_row(cls, row: Row[Any]) -> Account:
        m = row._mapping
        return cls(
            m["id"],
            m["thumbprint"],
            m["jwk"],
            m["status"],
            tuple(json.loads(m["contact"] or "[]")),
            bool(m["tos_agreed"]),
            m["eab_key_id"],
            m["eab_profile"],
            m["created_at"],
        )


@dataclass(frozen=True)
class Challenge:
    id: int
    authz_id: int
    type: str
    token: str
    status: str
    validated_at: dt.datetime | None
    error: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Row[Any]) -> Challenge:
        m = row._mapping
        return cls(
            m["id"],
            m["authz_id"],
            m["type"],
            m["token"],
            m["status"],
            m["validated_at"],
            json.loads(m["error"]) if m["error"] else None,
        )


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

    @classmethod
    def from_row(cls, row: Row[Any], challenges: tuple[Challenge, ...]) -> Authz:
        m = row._mapping
        return cls(
            m["id"],
            m["account_id"],
            Identifier(m["identifier_type"], m["identifier_value"]),
            bool(m["wildcard"]),
            m["status"],
            m["created_at"],
            m["expires_at"],
            m["validated_at"],
            m["method"],
            challenges,
        )


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

    @classmethod
    def from_row(cls, row: Row[Any]) -> Order:
        m = row._mapping
        return cls(
            m["id"],
            m["account_id"],
            m["profile"],
            m["status"],
            tuple(Identifier.parse(s) for s in json.loads(m["identifiers"])),
            tuple(int(i) for i in json.loads(m["authz_ids"])),
            m["not_before"],
            m["not_after"],
            m["replaces"],
            m["replaces_cert_id"],
            json.loads(m["error"]) if m["error"] else None,
            m["certificate_id"],
            m["request_id"],
            m["created_at"],
            m["expires_at"],
            m["processing_at"],
            m["csr_key"],
        )


@dataclass(frozen=True)
class NewAuthz:
    """What newOrder needs: one authorization per identifier, with its challenge types and tokens."""

    identifier: Identifier
    wildcard: bool
    challenges: tuple[tuple[str, str], ...]  # (type, token)


class AcmeStore:
    """Async repository of ACME state; every method is one read or one transaction."""

    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    # -- accounts ---------------------------------------------------------------------
    async def account(self, account_id: int) -> Account | None:
        def q(conn: Connection) -> Account | None:
            row = conn.execute(select(accounts_t).where(accounts_t.c.id == account_id)).first()
            return Account.from_row(row) if row else None

        return await self.db.read(q)

    async def account_by_thumbprint(self, thumbprint: str) -> Account | None:
        def q(conn: Connection) -> Account | None:
            row = conn.execute(select(accounts_t).where(accounts_t.c.thumbprint == thumbprint)).first()
            return Account.from_row(row) if row else None

        return await self.db.read(q)

    async def create_account(self, values: dict[str, Any], charges: Charges = NO_CHARGES) -> tuple[Account, bool]:
        """Insert, or return the account that already has this key (created=False); the rate-limit
        `charges` are spent in the same transaction (ACME-25)."""

        def w(tx: Tx) -> Account | Refusal:
            refusal = charges.spend(tx.conn)
            if refusal is not None:
                return refusal
            new_id = tx.conn.execute(insert(accounts_t).values(**values).returning(accounts_t.c.id)).scalar_one()
            tx.audit(
                AuditEvent(
                    f"acme:{new_id}",
                    "acme.account.created",
                    f"acme/account/{new_id}",
                    {"thumbprint": values["thumbprint"], "eab": values.get("eab_key_id")},
                )
            )
            row = tx.conn.execute(select(accounts_t).where(accounts_t.c.id == new_id)).one()
            return Account.from_row(row)

        try:
            created = await self.db.write(w)
        except IntegrityError:
            existing = await self.account_by_thumbprint(str(values["thumbprint"]))
            if existing is None:
                raise
            return existing, False
        if isinstance(created, Refusal):
            raise created.problem()
        return created, True

    async def update_account(self, account_id: int, values: dict[str, Any], action: str) -> Account | None:
        """Change contact/status/key; None if another account already has the new key."""

        def w(tx: Tx) -> Account:
            tx.conn.execute(update(accounts_t).where(accounts_t.c.id == account_id).values(**values))
            detail = {k: v for k, v in values.items() if k != "jwk"}
            tx.audit(AuditEvent(f"acme:{account_id}", action, f"acme/account/{account_id}", detail))
            if values.get("status") == "deactivated":
                # RFC 8555 §7.3.6: the account's pending authorizations end with it.
                tx.conn.execute(
                    update(authzs_t)
                    .where(authzs_t.c.account_id == account_id, authzs_t.c.status == "pending")
                    .values(status="deactivated")
                )
            return Account.from_row(tx.conn.execute(select(accounts_t).where(accounts_t.c.id == account_id)).one())

        try:
            return await self.db.write(w)
        except IntegrityError:
            return None

    # -- orders and authorizations ---------------------------------------------------------------
    async def create_order(
        self,
        *,
        account_id: int,
        profile: str,
        identifiers: Sequence[Identifier],
        new_authzs: Sequence[NewAuthz],
        reuse_after: dt.datetime | None,
        now: dt.datetime,
        order_expires: dt.datetime,
        authz_expires: dt.datetime,
        not_before: dt.datetime | None,
        not_after: dt.datetime | None,
        replaces: str | None,
        replaces_cert_id: int | None,
        charges: Charges = NO_CHARGES,
    ) -> Order:
        """One transaction: spend the rate-limit charges (ACME-25), reuse the account's valid
        authorizations where allowed (ACME-24), create the rest with their challenges, then the order."""

        def w(tx: Tx) -> Order | Refusal:
            conn = tx.conn
            refusal = charges.spend(conn)
            if refusal is not None:
                return refusal  # not raised: that would roll back the writers sharing this commit
            authz_ids: list[int] = []
            statuses: list[str] = []
            expires = order_expires  # never past an authorization it relies on (RFC 8555 §7.1.3)
            for spec in new_authzs:
                reused = None
                if reuse_after is not None:
                    reused = conn.execute(
                        select(authzs_t.c.id, authzs_t.c.expires_at)
                        .where(
                            authzs_t.c.account_id == account_id,
                            authzs_t.c.identifier_value == spec.identifier.value,
                            authzs_t.c.identifier_type == spec.identifier.type,
                            authzs_t.c.wildcard == spec.wildcard,
                            authzs_t.c.status == "valid",
                            authzs_t.c.validated_at > reuse_after,
                            authzs_t.c.expires_at > now + REUSE_MARGIN,
                        )
                        .order_by(authzs_t.c.expires_at.desc())
                        .limit(1)
                    ).first()
                if reused is not None:
                    authz_ids.append(int(reused.id))
                    statuses.append("valid")
                    expires = min(expires, reused.expires_at)
                    continue
                authz_id = _insert_authz(conn, account_id, spec, now, authz_expires)
                authz_ids.append(authz_id)
                statuses.append("pending")
            status = "ready" if statuses and all(s == "valid" for s in statuses) else "pending"
            values = {
                "account_id": account_id,
                "profile": profile,
                "status": status,
                "identifiers": json.dumps([str(i) for i in identifiers]),
                "authz_ids": json.dumps(authz_ids),
                "not_before": not_before,
                "not_after": not_after,
                "replaces": replaces,
                "replaces_cert_id": replaces_cert_id,
                "created_at": now,
                "expires_at": expires,
            }
            order_id = conn.execute(_INSERT_ORDER, values).scalar_one()
            return Order(
                int(order_id),
                account_id,
                profile,
                status,
                tuple(identifiers),
                tuple(authz_ids),
                not_before,
                not_after,
                replaces,
                replaces_cert_id,
                None,
                None,
                None,
                now,
                expires,
                None,
            )

        created = await self.db.write_grouped(w)
        if isinstance(created, Refusal):
            raise created.problem()
        return created

    async def create_authz(
        self, account_id: int, spec: NewAuthz, now: dt.datetime, expires: dt.datetime, charges: Charges = NO_CHARGES
    ) -> int:
        """Pre-authorization (RFC 8555 §7.4.1): an authorization outside any order, paid for with
        `charges` in the same transaction."""

        def w(tx: Tx) -> int | Refusal:
            refusal = charges.spend(tx.conn)
            if refusal is not None:
                return refusal  # not raised: that would roll back the writers sharing this commit
            return _insert_authz(tx.conn, account_id, spec, now, expires)

        created = await self.db.write_grouped(w)
        if isinstance(created, Refusal):
            raise created.problem()
        return created

    async def order(self, order_id: int) -> Order | None:
        def q(conn: Connection) -> Order | None:
            row = conn.execute(select(orders_t).where(orders_t.c.id == order_id)).first()
            return Order.from_row(row) if row else None

        return await self.db.read(q)

    async def order_with_authzs(self, order_id: int) -> tuple[Order, list[Authz]] | None:
        def q(conn: Connection) -> tuple[Order, list[Authz]] | None:
            row = conn.execute(select(orders_t).where(orders_t.c.id == order_id)).first()
            if row is None:
                return None
            order = Order.from_row(row)
            return order, _load_authzs(conn, order.authz_ids)

        return await self.db.read(q)

    async def authz(self, authz_id: int) -> Authz | None:
        def q(conn: Connection) -> Authz | None:
            found = _load_authzs(conn, [authz_id])
            return found[0] if found else None

        return await self.db.read(q)

    async def challenge(self, challenge_id: int) -> tuple[Challenge, Authz] | None:
        return await self.db.read(lambda conn: _challenge(conn, challenge_id))

    async def finish_challenge(
        self,
        challenge: Challenge,
        authz: Authz,
        *,
        ok: bool,
        error: dict[str, Any] | None,
        now: dt.datetime,
        valid_until: dt.datetime,
    ) -> None:
        """Record the validation result and decide the authorization (RFC 8555 §7.1.6)."""

        def w(tx: Tx) -> None:
            tx.conn.execute(
                _FINISH_CHALLENGE,
                {
                    "challenge_id": challenge.id,
                    "v_status": "valid" if ok else "invalid",
                    "v_validated_at": now if ok else None,
                    "v_error": json.dumps(error) if error else None,
                },
            )
            if ok:
                tx.conn.execute(
                    _AUTHZ_VALID,
                    {
                        "authz_id": authz.id,
                        "v_validated_at": now,
                        "v_method": challenge.type,
                        "v_expires_at": valid_until,
                    },
                )
            else:
                tx.conn.execute(_AUTHZ_INVALID, {"authz_id": authz.id})
            tx.audit(
                AuditEvent(
                    f"acme:{authz.account_id}",
                    "acme.authz.valid" if ok else "acme.authz.invalid",
                    f"acme/authz/{authz.id}",
                    {
                        "identifier": str(authz.proves),
                        "method": challenge.type,
                        **({"error": error.get("detail", "")} if error else {}),
                    },
                )
            )

        await self.db.write_grouped(w)

    async def deactivate_authz(self, authz_id: int) -> None:
        def w(tx: Tx) -> None:
            tx.conn.execute(
                update(authzs_t)
                .where(authzs_t.c.id == authz_id, authzs_t.c.status.in_(("pending", "valid")))
                .values(status="deactivated")
            )

        await self.db.write(w)

    async def valid_identifiers(self, account_id: int, values: Iterable[str], now: dt.datetime) -> set[Identifier]:
        """Names this account holds a valid, unexpired authorization for (revocation, ACME-12)."""
        wanted = sorted(set(values))

        def q(conn: Connection) -> set[Identifier]:
            rows = conn.execute(
                select(authzs_t).where(
                    authzs_t.c.account_id == account_id,
                    authzs_t.c.identifier_value.in_(wanted),
                    authzs_t.c.status == "valid",
                    authzs_t.c.expires_at > now,
                )
            )
            return {Authz.from_row(r, ()).proves for r in rows}

        return await self.db.read(q)

    async def set_order(self, order_id: int, from_statuses: tuple[str, ...], values: dict[str, Any]) -> bool:
        """Compare-and-set on the order's status: the only way an order moves (§7.1.6)."""

        statement = _set_order_statement(tuple(sorted(values)))
        params = {
            **{f"v_{k}": v for k, v in values.items()},
            "order_id": order_id,
            "from_statuses": list(from_statuses),
        }

        def w(tx: Tx) -> bool:
            return bool(tx.conn.execute(statement, params).rowcount == 1)

        return await self.db.write_grouped(w)

    @staticmethod
    def order_issued(order_id: int) -> Callable[[Tx, int], None]:
        """processing -> valid with the certificate, as a write inside the core's result
        transaction (ca.issuer.in_result_transaction): no commit of its own. If the order has
        left processing meanwhile (ST-02 recovery found the certificate first), it is left alone."""

        def write(tx: Tx, certificate_id: int) -> None:
            tx.execute_many(_ORDER_ISSUED, {"order_id": order_id, "v_certificate_id": certificate_id})

        return write

    async def orders_of(self, account_id: int, limit: int = 1000) -> list[int]:
        def q(conn: Connection) -> list[int]:
            rows = conn.execute(
                select(orders_t.c.id)
                .where(
                    orders_t.c.account_id == account_id,
                    orders_t.c.status.in_(("pending", "ready", "processing", "valid")),
                )
                .order_by(orders_t.c.id.desc())
                .limit(limit)
            )
            return [int(r.id) for r in rows]

        return await self.db.read(q)

    async def order_for_certificate(self, certificate_id: int) -> Order | None:
        def q(conn: Connection) -> Order | None:
            row = conn.execute(select(orders_t).where(orders_t.c.certificate_id == certificate_id)).first()
            return Order.from_row(row) if row else None

        return await self.db.read(q)

    async def processing_since(self, before: dt.datetime, limit: int) -> list[tuple[Order, list[Authz]]]:
        """Orders in processing (not waiting for an operator) since before `before`: what a crash
        may have left behind (ST-02), oldest first, with their authorizations."""

        def q(conn: Connection) -> list[tuple[Order, list[Authz]]]:
            started = func.coalesce(orders_t.c.processing_at, orders_t.c.created_at)
            rows = conn.execute(
                select(orders_t)
                .where(orders_t.c.status == "processing", orders_t.c.request_id.is_(None), started < before)
                .order_by(orders_t.c.id)
                .limit(limit)
            ).all()
            return [(o, _load_authzs(conn, o.authz_ids)) for o in map(Order.from_row, rows)]

        return await self.db.read(q)

    async def replacements(self, cert_id: int) -> list[tuple[Order, list[Authz]]]:
        """RFC 9773 §5: the orders, not stored as invalid, that replace a certificate, with their
        authorizations (the caller applies the status rules: one may have expired or be stuck)."""

        def q(conn: Connection) -> list[tuple[Order, list[Authz]]]:
            rows = conn.execute(
                select(orders_t).where(orders_t.c.replaces_cert_id == cert_id, orders_t.c.status != "invalid").limit(10)
            ).all()
            return [(o, _load_authzs(conn, o.authz_ids)) for o in map(Order.from_row, rows)]

        return await self.db.read(q)

    async def issued_since(self, requester: str, since: dt.datetime) -> list[tuple[int, tuple[str, ...], bytes]]:
        """Certificates a requester got since a moment (finalize recovery after a crash, ST-01 F4)."""

        def q(conn: Connection) -> list[tuple[int, tuple[str, ...], bytes]]:
            rows = conn.execute(
                select(certificates.c.id, certificates.c.sans, certificates.c.der)
                .where(
                    certificates.c.requester == requester,
                    certificates.c.status == "issued",
                    certificates.c.created_at >= since,
                )
                .limit(1000)
            )
            return [(int(r.id), tuple(json.loads(r.sans)), bytes(r.der)) for r in rows if r.der is not None]

        return await self.db.read(q)

    # -- nonces ---------------------------------------------------------------------------
    async def add_nonces(self, values: Sequence[str], expires_at: dt.datetime) -> None:
        def w(tx: Tx) -> None:
            tx.conn.execute(insert(nonces_t), [{"value": v, "expires_at": expires_at} for v in values])

        await self.db.write_grouped(w)

    async def redeem_nonce(self, value: str, now: dt.datetime) -> bool:
        """Delete the row; exactly one request anywhere can see rowcount 1 (SEC-02)."""

        def w(tx: Tx) -> bool:
            result = tx.conn.execute(delete(nonces_t).where(nonces_t.c.value == value, nonces_t.c.expires_at > now))
            return bool(result.rowcount == 1)

        return await self.db.write_grouped(w)

    async def redeem_nonce_for(
        self,
        value: str,
        now: dt.datetime,
        account_id: int,
        load: Callable[[Connection, Account], L] | None = None,
    ) -> tuple[bool, Account | None, L | None]:
        """Redeem a nonce and read the signing account in the same (grouped) transaction: one
        round trip per request, and the account's status is as fresh as the nonce check.
        `load`, if given, reads what the request is about in that same transaction (only when the
        nonce was good and the account exists), so a POST-as-GET costs one database round trip."""

        def w(tx: Tx) -> tuple[bool, Account | None, L | None]:
            conn = tx.conn
            result = conn.execute(_REDEEM_NONCE, {"nonce_value": value, "nonce_now": now})
            redeemed = bool(result.rowcount == 1)
            row = conn.execute(_ACCOUNT_BY_ID, {"account_id": account_id}).first()
            account = Account.from_row(row) if row else None
            loaded = load(conn, account) if (load is not None and redeemed and account is not None) else None
            return redeemed, account, loaded

        return await self.db.write_grouped(w)

    async def sweep_nonces(self, now: dt.datetime, cap: int) -> int:
        """Drop expired nonces, then the oldest beyond the cap (LOAD-04: bounded table)."""

        def w(tx: Tx) -> int:
            removed = tx.conn.execute(delete(nonces_t).where(nonces_t.c.expires_at <= now)).rowcount
            count = tx.conn.execute(select(func.count()).select_from(nonces_t)).scalar_one()
            if count > cap:
                cutoff = tx.conn.execute(
                    select(nonces_t.c.expires_at).order_by(nonces_t.c.expires_at).offset(count - cap).limit(1)
                ).scalar_one()
                removed += tx.conn.execute(delete(nonces_t).where(nonces_t.c.expires_at < cutoff)).rowcount
            return int(removed)

        return await self.db.write(w)

    # -- renewal information ----------------------------------------------------------------
    async def add_renew_now(self, scope: str, value: str, actor: str, now: dt.datetime) -> None:
        def w(tx: Tx) -> None:
            tx.conn.execute(insert(renew_now_t).values(scope=scope, value=value, created_at=now, actor=actor))
            tx.audit(AuditEvent(actor, "acme.renew_now", f"{scope}/{value}"))

        await self.db.write(w)

    async def renew_now_since(self, serial_hex: str, profile: str, issuer: str, after: dt.datetime) -> bool:
        def q(conn: Connection) -> bool:
            row = conn.execute(
                select(renew_now_t.c.id)
                .where(
                    renew_now_t.c.created_at >= after,
                    or_(
                        and_(renew_now_t.c.scope == "serial", renew_now_t.c.value == serial_hex),
                        and_(renew_now_t.c.scope == "profile", renew_now_t.c.value == profile),
                        and_(renew_now_t.c.scope == "issuer", renew_now_t.c.value == issuer),
                    ),
                )
                .limit(1)
            ).first()
            return row is not None

        return await self.db.read(q)


def _load_authzs(conn: Connection, ids: Sequence[int]) -> list[Authz]:
    if not ids:
        return []
    return _authzs_from_rows(conn.execute(_AUTHZS_WITH_CHALLS, {"ids": list(ids)}), ids)


def _authzs_from_rows(rows: Iterable[Row[Any]], order: Sequence[int] | None = None) -> list[Authz]:
    """Authorizations from joined authorization+challenge rows, in ``order`` (ids) if given."""
    heads: dict[int, Row[Any]] = {}
    challs: dict[int, list[Challenge]] = {}
    for r in rows:
        m = r._mapping
        authz_id = int(m["id"])
        heads.setdefault(authz_id, r)
        found = challs.setdefault(authz_id, [])
        if m["c_id"] is not None:
            found.append(
                Challenge(
                    m["c_id"],
                    m["c_authz_id"],
                    m["c_type"],
                    m["c_token"],
                    m["c_status"],
                    m["c_validated_at"],
                    json.loads(m["c_error"]) if m["c_error"] else None,
                )
            )
    ids = order if order is not None else list(heads)
    return [Authz.from_row(heads[i], tuple(challs[i])) for i in ids if i in heads]


# -- loaders: reads that run inside the nonce-redeeming transaction (AcmeStore.redeem_nonce_for) --
def load_authz(authz_id: int) -> Callable[[Connection, Account], Authz | None]:
    def q(conn: Connection, _account: Account) -> Authz | None:
        found = _load_authzs(conn, [authz_id])
        return found[0] if found else None

    return q


def load_order_with_authzs(order_id: int) -> Callable[[Connection, Account], tuple[Order, list[Authz]] | None]:
    def q(conn: Connection, _account: Account) -> tuple[Order, list[Authz]] | None:
        row = conn.execute(_ORDER_BY_ID, {"order_id": order_id}).first()
        if row is None:
            return None
        order = Order.from_row(row)
        return order, _load_authzs(conn, order.authz_ids)

    return q


def load_challenge(
    challenge_id: int, start_at: dt.datetime | None = None
) -> Callable[[Connection, Account], tuple[Challenge, Authz, bool] | None]:
    """The challenge and its authorization. With ``start_at`` (a challenge response, RFC 8555
    §7.5.1) it also moves pending -> processing, in the same transaction, when the signing
    account owns it and the authorization is pending and unexpired: the nonce, the read and the
    start share one commit. The flag says whether this request started it."""

    def q(conn: Connection, account: Account) -> tuple[Challenge, Authz, bool] | None:
        found = _challenge(conn, challenge_id)
        if found is None:
            return None
        challenge, authz = found
        if (
            start_at is None
            or challenge.status != "pending"
            or authz.account_id != account.id
            or authz.current_status(start_at) != "pending"
            or not _start_challenge(conn, challenge.id, authz.id, start_at)
        ):
            return challenge, authz, False
        return replace(challenge, status="processing"), authz, True

    return q


def _start_challenge(conn: Connection, challenge_id: int, authz_id: int, now: dt.datetime) -> bool:
    """pending -> processing, once, and only while its authorization is pending and unexpired."""
    params = {"authz_id": authz_id, "challenge_id": challenge_id, "now": now}
    if conn.execute(_CHALLS_BUSY, params).scalar_one():
        return False  # RFC 8555 §7.1.6: one challenge decides an authorization
    if conn.execute(_AUTHZ_LIVE, params).first() is None:
        return False
    return bool(conn.execute(_START_CHALLENGE, params).rowcount == 1)


def load_certificate(certificate_id: int) -> Callable[[Connection, Account], tuple[Order | None, Row[Any] | None]]:
    """The order that made a certificate, and the certificate row if the order is this account's."""

    def q(conn: Connection, account: Account) -> tuple[Order | None, Row[Any] | None]:
        row = conn.execute(_ORDER_BY_CERT, {"certificate_id": certificate_id}).first()
        order = Order.from_row(row) if row else None
        if order is None or order.account_id != account.id:
            return order, None
        return order, conn.execute(_CERT_BY_ID, {"certificate_id": certificate_id}).first()

    return q


def _challenge(conn: Connection, challenge_id: int) -> tuple[Challenge, Authz] | None:
    found = _authzs_from_rows(conn.execute(_AUTHZ_WITH_CHALLS_BY_CHALLENGE, {"challenge_id": challenge_id}))
    if not found:
        return None
    authz = found[0]
    chall = next(c for c in authz.challenges if c.id == challenge_id)
    return chall, authz


__all__ = ["Account", "AcmeStore", "Authz", "Challenge", "NewAuthz", "Order"]
