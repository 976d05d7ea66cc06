"""ACME authorizations and their challenges (RFC 8555 §7.5): created with an order or alone
(pre-authorization), reused (ACME-24), started, decided once (§7.1.6), deactivated, and
resumed or failed when a crash cut their validation short (ST-19)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Row

from ca.enrollment import Identifier
from ca.state_store import AuditEvent, Connection, StateDatabase, Tx, record_from_row
from protocols.acme.ratelimit import NO_CHARGES, Charges, Refusal
from protocols.acme.records import Account, Authz, Challenge, NewAuthz
from protocols.acme.store.tables import accounts_t, authzs_t, challenges_t, status_move

# A reused authorization must stay valid at least this long, so the order it serves can be finished.
REUSE_MARGIN = dt.timedelta(hours=1)
# Validations a challenge may start: the client's, then one resumption after a crash cut it
# short (ST-19). A validation that keeps dying with its process fails instead of looping.
MAX_VALIDATION_ATTEMPTS = 2

# Statements every request runs, built once: building a statement and its cache key per call
# costs more than SQLite takes to run it.
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
    .values(status="processing", processing_at=bindparam("now"), attempts=challenges_t.c.attempts + 1)
)
# A stale validation is taken over by compare-and-set on its start time: of the processes (or
# client requests) that try at once, one moves processing_at forward and the rest see it fresh.
_STALE = (challenges_t.c.status == "processing") & (
    challenges_t.c.processing_at.is_(None) | (challenges_t.c.processing_at < bindparam("stale_before"))
)
_RESUME_CHALLENGE = (
    update(challenges_t)
    .where(
        challenges_t.c.id == bindparam("challenge_id"),
        _STALE,
        challenges_t.c.attempts < MAX_VALIDATION_ATTEMPTS,
    )
    .values(processing_at=bindparam("now"), attempts=challenges_t.c.attempts + 1)
)
# Only a challenge still processing is decided: a second validation of the same challenge (a
# resumed one racing one that was only slow) finds it decided and changes nothing.
_FINISH_CHALLENGE = status_move(challenges_t, "challenge_id", "processing", None, "status", "validated_at", "error")
_FINISH_STALE_CHALLENGE = _FINISH_CHALLENGE.where(_STALE)
_AUTHZ_VALID = status_move(authzs_t, "authz_id", "pending", "valid", "validated_at", "method", "expires_at")
_AUTHZ_INVALID = status_move(authzs_t, "authz_id", "pending", "invalid")
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


def _count(value: int | None) -> int:
    """Validations started; rows written before the column existed hold NULL."""
    return int(value or 0)


def json_or_none(text: str | None) -> Any:
    """A JSON column that may be empty (a challenge's or an order's error document)."""
    return json.loads(text) if text else None


def authz_from_row(row: Row[Any], challenges: tuple[Challenge, ...]) -> Authz:
    m = row._mapping
    return Authz(
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


def insert_authz(conn: Connection, account_id: int, spec: NewAuthz, now: dt.datetime, expires: dt.datetime) -> int:
    """A pending authorization with its challenges; its id (also for a new order, store/orders.py)."""
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


def reusable_authz(
    conn: Connection, account_id: int, spec: NewAuthz, reuse_after: dt.datetime, now: dt.datetime
) -> tuple[int, dt.datetime] | None:
    """The account's valid authorization for this name that a new order may reuse (ACME-24): its
    id and expiry, the longest-lived first."""
    row = conn.execute(
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
    return (int(row.id), row.expires_at) if row is not None else None


def load_authzs(conn: Connection, ids: Sequence[int]) -> list[Authz]:
    """Authorizations with their challenges, in the order of ``ids`` (an order's authorizations)."""
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
            found.append(record_from_row(Challenge, r, prefix="c_", error=json_or_none, attempts=_count))
    ids = order if order is not None else list(heads)
    return [authz_from_row(heads[i], tuple(challs[i])) for i in ids if i in heads]


def _authz(conn: Connection, authz_id: int) -> Authz | None:
    found = load_authzs(conn, [authz_id])
    return found[0] if found else None


def _challenge(conn: Connection, challenge_id: int) -> tuple[Challenge, Authz] | None:
    found = _authzs_from_rows(conn.execute(_AUTHZ_WITH_CHALLS_BY_CHALLENGE, {"challenge_id": challenge_id}))
    if not found:
        return None
    authz = found[0]
    chall = next(c for c in authz.challenges if c.id == challenge_id)
    return chall, authz


def _start_challenge(conn: Connection, challenge_id: int, authz_id: int, now: dt.datetime) -> bool:
    """pending -> processing, once, and only while its authorization is pending and unexpired."""
    params = {"authz_id": authz_id, "challenge_id": challenge_id, "now": now}
    if conn.execute(_CHALLS_BUSY, params).scalar_one():
        return False  # RFC 8555 §7.1.6: one challenge decides an authorization
    if conn.execute(_AUTHZ_LIVE, params).first() is None:
        return False
    return bool(conn.execute(_START_CHALLENGE, params).rowcount == 1)


def _resume_challenge(conn: Connection, challenge_id: int, stale_before: dt.datetime, now: dt.datetime) -> bool:
    """processing (stale, attempts left) -> processing again from `now`; True for the one caller
    that takes the validation over."""
    params = {"challenge_id": challenge_id, "stale_before": stale_before, "now": now}
    return bool(conn.execute(_RESUME_CHALLENGE, params).rowcount == 1)


class AuthzStore:
    """Authorizations and challenges; every method is one read or one transaction."""

    def __init__(self, db: StateDatabase) -> None:
        self.db = db

    async def create(
        self, account_id: int, spec: NewAuthz, now: dt.datetime, expires: dt.datetime, charges: Charges = NO_CHARGES
    ) -> int:
        """Pre-authorization (RFC 8555 §7.4.1): an authorization outside any order, paid for with
        `charges` in the same transaction."""

        def w(tx: Tx) -> int | Refusal:
            refusal = charges.spend(tx.conn)
            if refusal is not None:
                return refusal  # not raised: that would roll back the writers sharing this commit
            return insert_authz(tx.conn, account_id, spec, now, expires)

        created = await self.db.write_grouped(w)
        if isinstance(created, Refusal):
            raise created.problem()
        return created

    async def get(self, authz_id: int) -> Authz | None:
        return await self.db.read(lambda conn: _authz(conn, authz_id))

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
        stale_before: dt.datetime | None = None,
    ) -> bool:
        """Record the validation result and decide the authorization (RFC 8555 §7.1.6); False,
        and nothing written, if the challenge was already decided. With ``stale_before`` (the
        sweeper failing a validation a crash cut short) only while it is still that stale: not
        once someone took it over."""

        def w(tx: Tx) -> bool:
            finished = tx.conn.execute(
                _FINISH_CHALLENGE if stale_before is None else _FINISH_STALE_CHALLENGE,
                {
                    "challenge_id": challenge.id,
                    "v_status": "valid" if ok else "invalid",
                    "v_validated_at": now if ok else None,
                    "v_error": json.dumps(error) if error else None,
                    "stale_before": stale_before,
                },
            )
            if finished.rowcount != 1:
                return False
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
            return True

        return await self.db.write_grouped(w)

    async def stale_challenges(self, stale_before: dt.datetime, limit: int) -> list[tuple[Challenge, Authz, str]]:
        """Challenges processing since before `stale_before` (or since before their start time was
        recorded), with their authorization and the account key's thumbprint (for the key
        authorization a resumed validation checks): validations a crash cut short (ST-19)."""

        def q(conn: Connection) -> list[tuple[Challenge, Authz, str]]:
            rows = conn.execute(
                select(challenges_t.c.id, accounts_t.c.thumbprint)
                .select_from(
                    challenges_t.join(authzs_t, authzs_t.c.id == challenges_t.c.authz_id).join(
                        accounts_t, accounts_t.c.id == authzs_t.c.account_id
                    )
                )
                .where(_STALE)
                .order_by(challenges_t.c.id)
                .limit(limit),
                {"stale_before": stale_before},
            ).all()
            found = []
            for row in rows:
                pair = _challenge(conn, int(row.id))
                if pair is not None:
                    found.append((*pair, str(row.thumbprint)))
            return found

        return await self.db.read(q)

    async def resume_challenge(self, challenge_id: int, stale_before: dt.datetime, now: dt.datetime) -> bool:
        """Take over a stale validation (see `_RESUME_CHALLENGE`); True if this caller got it."""
        return await self.db.write(lambda tx: _resume_challenge(tx.conn, challenge_id, stale_before, now))

    async def deactivate(self, authz_id: int) -> None:
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
            return {authz_from_row(r, ()).proves for r in rows}

        return await self.db.read(q)


# -- loaders: reads that run inside the nonce-redeeming transaction (NonceStore.redeem_for) --
def load_authz(authz_id: int) -> Callable[[Connection, Account], Authz | None]:
    def q(conn: Connection, _account: Account) -> Authz | None:
        return _authz(conn, authz_id)

    return q


def load_challenge(
    challenge_id: int, start_at: dt.datetime | None = None, stale_before: dt.datetime | None = None
) -> Callable[[Connection, Account], tuple[Challenge, Authz, bool] | None]:
    """The challenge and its authorization. With ``start_at`` (a challenge response, RFC 8555
    §7.5.1) it also moves pending -> processing, in the same transaction, when the signing
    account owns it and the authorization is pending and unexpired: the nonce, the read and the
    start share one commit. A response to a challenge processing since before ``stale_before``
    (its validation died with a process) takes that validation over instead (ST-19), so the
    client's repeated POST restarts it rather than waiting on nothing. The flag says whether
    this request started it."""

    def q(conn: Connection, account: Account) -> tuple[Challenge, Authz, bool] | None:
        found = _challenge(conn, challenge_id)
        if found is None:
            return None
        challenge, authz = found
        if start_at is None or authz.account_id != account.id or authz.current_status(start_at) != "pending":
            return challenge, authz, False
        if challenge.status == "pending" and _start_challenge(conn, challenge.id, authz.id, start_at):
            started = replace(challenge, status="processing", processing_at=start_at, attempts=challenge.attempts + 1)
            return started, authz, True
        if (
            challenge.status == "processing"
            and stale_before is not None
            and _resume_challenge(conn, challenge.id, stale_before, start_at)
        ):
            return replace(challenge, processing_at=start_at, attempts=challenge.attempts + 1), authz, True
        return challenge, authz, False

    return q


__all__ = [
    "MAX_VALIDATION_ATTEMPTS",
    "REUSE_MARGIN",
    "AuthzStore",
    "authz_from_row",
    "insert_authz",
    "load_authz",
    "load_authzs",
    "load_challenge",
    "reusable_authz",
]
