"""Reading and changing the CA registry. Every change writes its audit event in the same transaction."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from ca.audit import AuditEvent
from ca.authorities.model import Authority, KeyLocation, Kind
from ca.authorities.tables import authorities
from ca.errors import CAError, FailureReason
from ca.store.db import Database, Tx


def _record(row: Row[Any]) -> Authority:
    m = row._mapping
    return Authority(
        name=m["name"],
        family=m["family"],
        generation=m["generation"],
        kind=Kind(m["kind"]),
        parent=m["parent"],
        der=m["der"],
        key=KeyLocation.from_json(m["signer"]) if m["signer"] else None,
        activate_at=m["activate_at"],
        created_at=m["created_at"],
        revoked_at=m["revoked_at"],
        revocation_reason=m["revocation_reason"],
        chain_pem=m["chain"] or b"",
        links_pem=m["links"] or b"",
    )


def _values(a: Authority) -> dict[str, Any]:
    return {
        "name": a.name,
        "family": a.family,
        "generation": a.generation,
        "kind": a.kind.value,
        "parent": a.parent,
        "der": a.der,
        "chain": a.chain_pem or None,
        "signer": a.key.to_json() if a.key else None,
        "links": a.links_pem or None,
        "activate_at": a.activate_at,
        "revoked_at": a.revoked_at,
        "revocation_reason": a.revocation_reason,
        "created_at": a.created_at,
    }


def children(conn: Connection, parent: str) -> list[Authority]:
    """The generations ``parent`` signed, read inside a caller's transaction."""
    rows = conn.execute(select(authorities).where(authorities.c.parent == parent).order_by(authorities.c.name))
    return [_record(r) for r in rows]


class AuthorityStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[Authority]:
        def q(conn: Connection) -> list[Authority]:
            rows = conn.execute(select(authorities).order_by(authorities.c.family, authorities.c.generation))
            return [_record(r) for r in rows]

        return await self._db.read(q)

    async def get(self, name: str) -> Authority | None:
        return await self._db.read_first(select(authorities).where(authorities.c.name == name), _record)

    async def add(self, authority: Authority, event: AuditEvent | None) -> None:
        """A new generation or CA; a name already registered is refused."""

        def w(tx: Tx) -> None:
            tx.conn.execute(insert(authorities).values(_values(authority)))
            if event is not None:
                tx.audit(event)

        try:
            await self._db.write(w)
        except IntegrityError:
            raise CAError(f"a CA named {authority.name!r} is already registered", FailureReason.MALFORMED) from None

    async def ensure(self, authority: Authority) -> None:
        """Register a CA the config names, once: every process and command may try; one row results.
        Not audited: the config file is the record of what it names, and the registry only mirrors it."""
        if await self.get(authority.name) is not None:
            return
        try:
            await self.add(authority, None)
        except CAError:
            pass  # another process registered it meanwhile

    async def change(
        self,
        name: str,
        values: dict[str, Any],
        event: AuditEvent,
        *,
        unless_revoked: bool,
        then: Callable[[Tx], None] | None = None,
    ) -> bool:
        """Update one row (and audit it) when it exists and, if asked, is not revoked. ``then``
        runs in the same transaction after the update: what must be published with the change
        or not at all (a root's ARL and OCSP answers when one of its CAs is revoked)."""

        def w(tx: Tx) -> bool:
            stmt = update(authorities).where(authorities.c.name == name)
            if unless_revoked:
                stmt = stmt.where(authorities.c.revoked_at.is_(None))
            if tx.conn.execute(stmt.values(**values)).rowcount != 1:
                return False
            tx.audit(event)
            if then is not None:
                then(tx)
            return True

        return await self._db.write(w)

    async def schedule(self, name: str, at: dt.datetime, actor: str) -> bool:
        event = AuditEvent(actor, "ca.activation_scheduled", f"ca/{name}", {"activate_at": at.isoformat()})
        return await self.change(name, {"activate_at": at}, event, unless_revoked=True)

    async def mark_revoked(
        self, name: str, reason: str, at: dt.datetime, actor: str, *, then: Callable[[Tx], None] | None = None
    ) -> bool:
        event = AuditEvent(actor, "ca.revoked", f"ca/{name}", {"reason": reason, "revoked_at": at.isoformat()})
        values = {"revoked_at": at, "revocation_reason": reason}
        return await self.change(name, values, event, unless_revoked=True, then=then)

    async def attach_certificate(
        self, name: str, der: bytes, chain_pem: bytes, actor: str, *, root: Authority | None = None, **more: Any
    ) -> bool:
        """A pending generation (a CSR went out) receives its certificate; False when ``name`` is not
        pending (certified meanwhile, revoked, or gone). ``root``: the external root above it, when
        new, registered in the same transaction so neither is there without the other."""
        details: dict[str, object] = {k: str(v) for k, v in more.items()}
        if root is not None:
            details["root"] = root.name
        event = AuditEvent(actor, "ca.certificate_imported", f"ca/{name}", details)

        def w(tx: Tx) -> bool:
            pending = (authorities.c.name == name, authorities.c.der.is_(None), authorities.c.revoked_at.is_(None))
            values = {"der": der, "chain": chain_pem or None, **more}
            if tx.conn.execute(update(authorities).where(*pending).values(**values)).rowcount != 1:
                return False
            if root is not None:
                tx.conn.execute(insert(authorities).values(_values(root)))
                tx.audit(
                    AuditEvent(
                        actor,
                        "ca.root_registered",
                        f"ca/{root.name}",
                        {"subject": root.certificate.subject.rfc4514_string()},
                    )
                )
            tx.audit(event)
            return True

        try:
            return await self._db.write(w)
        except IntegrityError:
            raise CAError(
                f"a CA named {root.name if root else name!r} is already registered", FailureReason.MALFORMED
            ) from None
