"""`SessionStore`: dashboard sessions behind a cookie.

The cookie holds 32 random bytes; the table holds only their SHA-256, so a copy of the database
resumes nobody's session (OPS-10). A session ends at logout, after `IDLE` without a request,
`ABSOLUTE` after login, or as soon as its user is disabled or expires.

The CSRF token a form must echo is HMAC-SHA256(cookie secret, "csrf"): derived, not stored, and
known only to whoever holds the cookie (the page it was served on), so a cross-site form, which
sends the cookie but cannot read it, cannot supply it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from sqlalchemy import insert, select, update

from ca.audit import AuditEvent
from ca.clock import Clock
from ca.operators.errors import UnknownOperator
from ca.operators.principal import Principal
from ca.operators.tables import sessions, users
from ca.operators.tokens import token_digest
from ca.operators.users import principal_of, user_from_row, user_row
from ca.store.db import Database, Tx

IDLE = dt.timedelta(minutes=30)
ABSOLUTE = dt.timedelta(hours=12)
SEEN_EVERY = dt.timedelta(minutes=1)  # seen_at is written at most this often


def csrf_token(cookie_secret: str) -> str:
    return hmac.new(cookie_secret.encode(), b"csrf", hashlib.sha256).hexdigest()


def csrf_matches(cookie_secret: str, token: str) -> bool:
    """Whether a form's CSRF token is the one of this session (in constant time)."""
    return hmac.compare_digest(csrf_token(cookie_secret), token)


# A session with its user's columns; the session's own id and expiry renamed, as users have both.
_WITH_USER = select(
    users,
    sessions.c.id.label("session_id"),
    sessions.c.seen_at,
    sessions.c.expires_at.label("session_expires_at"),
    sessions.c.ended_at,
).join(sessions, users.c.id == sessions.c.user_id)


class SessionStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def start(self, user: str) -> tuple[str, str]:
        """A new session for ``user`` (who has just logged in): the cookie secret and its CSRF token."""
        secret = secrets.token_urlsafe(32)
        now = self.clock.now()

        def w(tx: Tx) -> None:
            row = user_row(tx.conn, user)
            if row is None:
                raise UnknownOperator(f"no user {user!r}")
            values = {
                "user_id": row.id,
                "secret_hash": token_digest(secret),
                "created_at": now,
                "seen_at": now,
                "expires_at": now + ABSOLUTE,
            }
            tx.conn.execute(insert(sessions).values(**values))
            tx.audit(AuditEvent(f"user:{user}", "session.started", f"user/{user}"))

        await self.db.write(w)
        return secret, csrf_token(secret)

    async def resume(self, cookie_secret: str) -> tuple[Principal, str] | None:
        """The principal and CSRF token of a live session, or None (unknown, ended, idle too long,
        too old, or its user disabled or expired)."""
        query = _WITH_USER.where(sessions.c.secret_hash == token_digest(cookie_secret))
        row: Any = await self.db.read_first(query, lambda found: found)
        now = self.clock.now()
        if row is None or row.ended_at is not None or row.session_expires_at <= now or now - row.seen_at > IDLE:
            return None
        user = user_from_row(row)
        if user.refusal(now) is not None:
            return None
        if now - row.seen_at >= SEEN_EVERY:

            def seen(tx: Tx) -> None:
                tx.conn.execute(update(sessions).where(sessions.c.id == row.session_id).values(seen_at=now))

            await self.db.write(seen)
        return principal_of(user), csrf_token(cookie_secret)

    async def end(self, cookie_secret: str) -> None:
        """Log out: the cookie resumes nothing from now on. An unknown or ended session is left as it is."""
        now = self.clock.now()
        digest = token_digest(cookie_secret)

        def w(tx: Tx) -> None:
            row = tx.conn.execute(_WITH_USER.where(sessions.c.secret_hash == digest)).first()
            if row is None or row.ended_at is not None:
                return
            tx.conn.execute(update(sessions).where(sessions.c.id == row.session_id).values(ended_at=now))
            tx.audit(AuditEvent(f"user:{row.name}", "session.ended", f"user/{row.name}"))

        await self.db.write(w)
