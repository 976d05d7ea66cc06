"""`TokenStore`: the API tokens of users (bearer tokens for the management API).

A token is `tetra_` and 32 random bytes in base64url. Only its SHA-256 is stored: the token
has full entropy, so a plain digest is a safe lookup key, and a copy of the database holds no
usable token (OPS-10). The token itself is returned once, by `create`, and never again.

`authenticate` says precisely why a token was refused (`TokenRefused.reason`) so that the
server can log it, and the server tells the client only "invalid token" (OPS-05).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from typing import Any

from sqlalchemy import Row, insert, select, update

from ca.audit import AuditEvent
from ca.clock import Clock
from ca.errors import BadRequest
from ca.operators.errors import TokenRefused, UnknownOperator
from ca.operators.model import ApiToken
from ca.operators.principal import Principal
from ca.operators.roles import Permission, parse_scopes
from ca.operators.tables import NAME_MAX, api_tokens, users
from ca.operators.users import principal_of, user_from_row, user_row
from ca.store.db import Database, Tx

PREFIX = "tetra_"  # says what a leaked string is, to people and to secret scanners
LAST_USED_EVERY = dt.timedelta(minutes=1)  # last_used_at is written at most this often


def requested_scopes(words: list[str], held: frozenset[Permission]) -> frozenset[Permission] | None:
    """The scopes an operator asks for (`tetra token create --scope`, the API's `scopes`), for a
    user holding ``held``: None when none is named (all the user's); `read` is every read
    permission the user holds; a named permission stays as named, so that `create` refuses one
    the user lacks. ValueError naming an unknown word."""
    if not words:
        return None
    named = parse_scopes([word for word in words if word != "read"])
    reads = parse_scopes(["read"]) & held if "read" in words else frozenset()
    return named | reads


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _token_from_row(row: Row[Any]) -> ApiToken:
    return ApiToken(
        id=row.id,
        user=row.user_name,
        label=row.label,
        scopes=None if row.scopes is None else frozenset(Permission(p) for p in json.loads(row.scopes)),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


_TOKENS = select(api_tokens, users.c.name.label("user_name")).join(users, users.c.id == api_tokens.c.user_id)

# A token with its user's columns; the token's own id and expiry renamed, as users have both too.
_WITH_USER = select(
    users,
    api_tokens.c.id.label("token_id"),
    api_tokens.c.expires_at.label("token_expires_at"),
    api_tokens.c.scopes,
    api_tokens.c.revoked_at,
    api_tokens.c.last_used_at,
).join(api_tokens, users.c.id == api_tokens.c.user_id)


class TokenStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def create(
        self,
        user: str,
        *,
        label: str,
        scopes: frozenset[Permission] | None,
        expires_at: dt.datetime | None,
        actor: str,
    ) -> tuple[ApiToken, str]:
        """A new token for ``user``: its record and the secret, which is shown only now.
        ``scopes`` narrows the token to those permissions (None: all the user's); a scope the
        user does not hold is refused rather than silently dropped."""
        if not label or len(label) > NAME_MAX:
            raise BadRequest(f"a token label has 1 to {NAME_MAX} characters")
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise BadRequest("the expiry is in the past")
        secret = PREFIX + secrets.token_urlsafe(32)
        scope_list = None if scopes is None else sorted(scopes)

        def w(tx: Tx) -> ApiToken:
            row = user_row(tx.conn, user)
            if row is None:
                raise UnknownOperator(f"no user {user!r}")
            allowed = principal_of(user_from_row(row)).permissions
            if scopes is not None and not scopes <= allowed:
                beyond = ", ".join(sorted(scopes - allowed))
                raise BadRequest(f"{user} does not hold these permissions, so its token cannot: {beyond}")
            values = {
                "user_id": row.id,
                "label": label,
                "token_hash": token_digest(secret),
                "scopes": None if scope_list is None else json.dumps(scope_list),
                "created_at": now,
                "expires_at": expires_at,
            }
            token_id = int(tx.conn.execute(insert(api_tokens).values(**values).returning(api_tokens.c.id)).scalar_one())
            details = {
                "id": token_id,
                "label": label,
                "scopes": scope_list,
                "expires_at": None if expires_at is None else expires_at.isoformat(),
            }
            tx.audit(AuditEvent(actor, "token.created", f"user/{user}", details))
            return _token_from_row(tx.conn.execute(_TOKENS.where(api_tokens.c.id == token_id)).one())

        return await self.db.write(w), secret

    async def list(self, user: str | None = None) -> list[ApiToken]:
        query = _TOKENS.order_by(api_tokens.c.id)
        if user is not None:
            query = query.where(users.c.name == user)
        rows = await self.db.read(lambda conn: list(conn.execute(query)))
        return [_token_from_row(row) for row in rows]

    async def get(self, token_id: int) -> ApiToken:
        found = await self.db.read_first(_TOKENS.where(api_tokens.c.id == token_id), _token_from_row)
        if found is None:
            raise UnknownOperator(f"no API token {token_id}")
        return found

    async def revoke(self, token_id: int, *, actor: str) -> ApiToken:
        """Refuse the token from now on; revoking a revoked token changes nothing."""
        now = self.clock.now()

        def w(tx: Tx) -> ApiToken:
            row = tx.conn.execute(_TOKENS.where(api_tokens.c.id == token_id)).first()
            if row is None:
                raise UnknownOperator(f"no API token {token_id}")
            if row.revoked_at is None:
                tx.conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=now))
                tx.audit(AuditEvent(actor, "token.revoked", f"user/{row.user_name}", {"id": token_id}))
            return _token_from_row(tx.conn.execute(_TOKENS.where(api_tokens.c.id == token_id)).one())

        return await self.db.write(w)

    async def authenticate(self, secret: str) -> Principal:
        """The principal acting with this token, or TokenRefused saying why not (for the log)."""
        if not secret.startswith(PREFIX):
            raise TokenRefused("unknown")
        digest = token_digest(secret)
        row = await self.db.read_first(_WITH_USER.where(api_tokens.c.token_hash == digest), lambda found: found)
        if row is None:
            raise TokenRefused("unknown")
        now = self.clock.now()
        if row.revoked_at is not None:
            raise TokenRefused("revoked")
        if row.token_expires_at is not None and row.token_expires_at <= now:
            raise TokenRefused("expired")
        user = user_from_row(row)
        refusal = user.refusal(now)
        if refusal is not None:
            raise TokenRefused(refusal)
        if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
            await self._mark_used(row.token_id, now)
        scopes = None if row.scopes is None else frozenset(Permission(p) for p in json.loads(row.scopes))
        return principal_of(user, scopes, row.token_id)

    async def _mark_used(self, token_id: int, now: dt.datetime) -> None:
        """Bookkeeping, not an operator's change: no audit event."""

        def w(tx: Tx) -> None:
            tx.conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now))

        await self.db.write(w)
