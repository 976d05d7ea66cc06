"""Protocol credentials kept in the store: EST users, SCEP challenges, CMP secrets, ACME EAB keys.

Each credential belongs to one protocol and authorizes only that protocol's
flow (docs/reliability.md, demand 9). Every check fails closed: a storage error while
checking or consuming a credential rejects the request.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, insert, select, update

from ca.audit import AuditEvent
from ca.passwords import hash_password, verify
from ca.records import Credential
from ca.store.db import Database, Tx
from ca.store.tables import credentials

T = TypeVar("T", str, bytes)


def challenge_key(challenge: str) -> str:
    """Random challenges have full entropy: a plain SHA-256 is a safe lookup key."""
    return hashlib.sha256(challenge.encode()).hexdigest()


def _to_credential(row: object) -> Credential:
    mapping = row._mapping  # type: ignore[attr-defined]
    return Credential(
        id=mapping["id"],
        protocol=mapping["protocol"],
        kind=mapping["kind"],
        key_id=mapping["key_id"],
        profile=mapping["profile"],
        identities=tuple(json.loads(mapping["identities"] or "[]")),
        one_time=bool(mapping["one_time"]),
        bound_to=mapping["bound_to"],
        secret=mapping["secret"],
        created_at=mapping["created_at"],
        expires_at=mapping["expires_at"],
        used_at=mapping["used_at"],
    )


def _unrevoked(protocol: str, key_id: str) -> tuple[ColumnElement[bool], ...]:
    """This protocol's credential under this key id, unless revoked. Every check, binding and
    revocation selects through here, so none can forget the revocation."""
    return credentials.c.protocol == protocol, credentials.c.key_id == key_id, credentials.c.revoked_at.is_(None)


def _usable(protocol: str, kind: str, key_id: str) -> Select[Any]:
    """The one row a check may accept: an unrevoked credential of the kind the check expects."""
    return select(credentials).where(*_unrevoked(protocol, key_id), credentials.c.kind == kind)


class CredentialStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _now(self) -> dt.datetime:
        return self.db.clock.now()

    async def _create(self, values: dict[str, object], actor: str) -> int:
        event = AuditEvent(
            actor,
            "credential.created",
            f"{values['protocol']}/{values['kind']}",
            {
                "key_id": values["key_id"] if values["kind"] != "challenge" else "(hashed)",
                "profile": values.get("profile"),
            },
        )

        def w(tx: Tx) -> int:
            result = tx.conn.execute(insert(credentials).values(**values).returning(credentials.c.id))
            tx.audit(event)
            return int(result.scalar_one())

        return await self.db.write(w)

    async def create_password(
        self,
        protocol: str,
        username: str,
        password: str,
        *,
        profile: str | None = None,
        identities: tuple[str, ...] = (),
        actor: str = "operator",
    ) -> int:
        return await self._create(
            {
                "protocol": protocol,
                "kind": "password",
                "key_id": username,
                "secret_hash": hash_password(password),
                "profile": profile,
                "identities": json.dumps(list(identities)),
                "one_time": False,
                "created_at": self._now(),
            },
            actor,
        )

    async def verify_password(self, protocol: str, username: str, password: str) -> Credential | None:
        found = await self.db.read_first(_usable(protocol, "password", username), lambda row: row)
        if not await verify(password, None if found is None else found.secret_hash):
            return None
        return _to_credential(found)

    async def list_credentials(self, protocol: str, kind: str) -> list[tuple[Credential, bool]]:
        """Every credential of ``kind`` for ``protocol`` by key id, each with whether it is revoked
        (operator listings; a revoked key id stays taken: its audit trail names it)."""
        query = (
            select(credentials)
            .where(credentials.c.protocol == protocol, credentials.c.kind == kind)
            .order_by(credentials.c.key_id)
        )
        rows = await self.db.read(lambda conn: list(conn.execute(query)))
        return [(_to_credential(row), row.revoked_at is not None) for row in rows]

    async def create_challenge(
        self,
        protocol: str,
        *,
        profile: str | None = None,
        identities: tuple[str, ...] = (),
        one_time: bool = True,
        ttl: dt.timedelta | None = dt.timedelta(hours=1),
        actor: str = "operator",
    ) -> str:
        challenge = secrets.token_urlsafe(24)
        await self._create(
            {
                "protocol": protocol,
                "kind": "challenge",
                "key_id": challenge_key(challenge),
                "profile": profile,
                "identities": json.dumps(list(identities)),
                "one_time": one_time,
                "expires_at": self._now() + ttl if ttl else None,
                "created_at": self._now(),
            },
            actor,
        )
        return challenge

    async def consume_challenge(self, protocol: str, challenge: str) -> Credential | None:
        """Accept a challenge at most once across all processes (SEC-02); None if not valid."""
        key = challenge_key(challenge)
        now = self._now()

        def w(tx: Tx) -> Credential | None:
            row = tx.conn.execute(_usable(protocol, "challenge", key)).first()
            if row is None or (row.expires_at is not None and row.expires_at <= now):
                return None
            if row.one_time:
                result = tx.conn.execute(
                    update(credentials)
                    .where(credentials.c.id == row.id, credentials.c.used_at.is_(None))
                    .values(used_at=now)
                )
                if result.rowcount != 1:
                    return None
                tx.audit(AuditEvent("system", "credential.used", f"{protocol}/challenge", {"id": row.id}))
            return _to_credential(row)

        return await self.db.write(w)

    async def create_mac_key(
        self,
        protocol: str,
        *,
        key_id: str | None = None,
        profile: str | None = None,
        identities: tuple[str, ...] = (),
        actor: str = "operator",
        secret: bytes | None = None,
    ) -> tuple[str, bytes]:
        key_id = key_id or _drawn(lambda: secrets.token_urlsafe(16))
        secret = secret or _drawn(lambda: secrets.token_bytes(32))
        await self._create(
            {
                "protocol": protocol,
                "kind": "mac-key",
                "key_id": key_id,
                "secret": secret,
                "profile": profile,
                "identities": json.dumps(list(identities)),
                "one_time": False,
                "created_at": self._now(),
            },
            actor,
        )
        return key_id, secret

    async def get_mac_key(self, protocol: str, key_id: str) -> Credential | None:
        return await self.db.read_first(_usable(protocol, "mac-key", key_id), _to_credential)

    async def bind(self, protocol: str, key_id: str, bound_to: str) -> bool:
        """Bind a credential to one principal (an ACME account) once; False if already bound."""

        def w(tx: Tx) -> bool:
            result = tx.conn.execute(
                update(credentials)
                .where(*_unrevoked(protocol, key_id), credentials.c.bound_to.is_(None))
                .values(bound_to=bound_to)
            )
            if result.rowcount == 1:
                tx.audit(AuditEvent(bound_to, "credential.bound", f"{protocol}/{key_id}"))
                return True
            return False

        return await self.db.write(w)

    async def revoke(self, protocol: str, key_id: str, actor: str = "operator") -> bool:
        now = self._now()

        def w(tx: Tx) -> bool:
            result = tx.conn.execute(update(credentials).where(*_unrevoked(protocol, key_id)).values(revoked_at=now))
            if result.rowcount:
                tx.audit(AuditEvent(actor, "credential.revoked", f"{protocol}/{key_id}"))
            return bool(result.rowcount)

        return await self.db.write(w)


def _drawn(draw: Callable[[], T]) -> T:
    """A random key id or MAC key whose base64url form does not start with "-": operators paste
    both into command lines (certbot --eab-kid, uacme -e), where a leading dash reads as an
    option. Redrawing one in 64 costs 0.02 bits of a 256-bit key."""
    while True:
        value = draw()
        text = value if isinstance(value, str) else base64.urlsafe_b64encode(value).decode()
        if not text.startswith("-"):
            return value
