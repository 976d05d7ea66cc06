"""`UserStore`: the local users of the management plane, their roles, teams and passwords.

Who may exist is checked here and only here (`_check_user`): a name of 1-64 characters from
[A-Za-z0-9._@-]; requesters and guests name their teams; a guest has exactly one team, an
expiry, and a guest access (read or request); no other role has a guest access. What a user may
do is `principal()`: the role's permissions, narrowed for a guest by its access and for an API
token by the token's scopes.

Every change writes one audit event in its own transaction, naming the acting operator and
never a password (OPS-07, OPS-10).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ca.audit import AuditEvent
from ca.clock import Clock
from ca.errors import BadRequest
from ca.operators.errors import UnknownOperator
from ca.operators.model import User
from ca.operators.passwords import hash_password
from ca.operators.principal import Principal
from ca.operators.roles import GUEST_ACCESS, ROLE_PERMISSIONS, TEAM_BOUND, Permission, Role
from ca.operators.tables import NAME_MAX, sessions, users
from ca.store.db import Database, Tx, first_record

_NAME = re.compile(rf"^[A-Za-z0-9._@-]{{1,{NAME_MAX}}}$")


def check_name(kind: str, name: str) -> None:
    """A user or team name: 1-64 characters of letters, digits and . _ @ - (BadRequest)."""
    if not _NAME.match(name):
        raise BadRequest(f"{kind} name {name!r}: 1 to {NAME_MAX} characters of letters, digits and . _ @ -")


def _check_user(role: Role, teams: frozenset[str], guest_access: str | None, expires_at: dt.datetime | None) -> None:
    for team in sorted(teams):
        check_name("team", team)
    if role in TEAM_BOUND and not teams:
        raise BadRequest(f"a {role} acts for its teams: name at least one team")
    if role is Role.GUEST:
        if len(teams) != 1:
            raise BadRequest("a guest belongs to exactly one team")
        if expires_at is None:
            raise BadRequest("a guest needs an expiry")
        if guest_access not in GUEST_ACCESS:
            raise BadRequest(f"a guest needs a guest access: {' or '.join(sorted(GUEST_ACCESS))}")
    elif guest_access is not None:
        raise BadRequest(f"only a guest has a guest access, not a {role}")


def parse_role(text: str | Role) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise BadRequest(f"unknown role {text!r}: one of {', '.join(r.value for r in Role)}") from None


def user_from_row(row: Row[Any]) -> User:
    """A `users` row (or a join that selects its columns under their own names) as a `User`."""
    return User(
        name=row.name,
        role=Role(row.role),
        teams=frozenset(json.loads(row.teams)),
        guest_access=row.guest_access,
        created_at=row.created_at,
        expires_at=row.expires_at,
        disabled_at=row.disabled_at,
        has_password=row.password_hash is not None,
    )


def principal_of(
    user: User, token_scopes: frozenset[Permission] | None = None, token_id: int | None = None
) -> Principal:
    """What ``user`` may do, through a token with ``token_scopes`` (None: no narrowing)."""
    permissions = ROLE_PERMISSIONS[user.role]
    if user.role is Role.GUEST:
        permissions &= GUEST_ACCESS.get(user.guest_access or "", frozenset())
    if token_scopes is not None:
        permissions &= token_scopes
    return Principal(
        user=user.name,
        role=user.role,
        permissions=permissions,
        teams=user.teams,
        all_teams=user.role not in TEAM_BOUND and not user.teams,
        token_id=token_id,
    )


def user_row(conn: Any, name: str) -> Row[Any] | None:
    """The user's row inside a transaction the caller holds (tokens and sessions start here)."""
    return first_record(conn, select(users).where(users.c.name == name), lambda row: row)


def _require_row(conn: Any, name: str) -> Row[Any]:
    row = user_row(conn, name)
    if row is None:
        raise UnknownOperator(f"no user {name!r}")
    return row


class UserStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    async def add(
        self,
        name: str,
        role: Role | str,
        teams: frozenset[str] | list[str] | tuple[str, ...] = frozenset(),
        *,
        actor: str,
        guest_access: str | None = None,
        expires_at: dt.datetime | None = None,
        password: str | None = None,
    ) -> User:
        check_name("user", name)
        role = parse_role(role)
        team_set = frozenset(teams)
        _check_user(role, team_set, guest_access, expires_at)
        now = self.clock.now()
        if expires_at is not None and expires_at <= now:
            raise BadRequest("the expiry is in the past")
        password_hash = None if password is None else await hash_password(password)
        values = {
            "name": name,
            "role": role.value,
            "teams": json.dumps(sorted(team_set)),
            "guest_access": guest_access,
            "password_hash": password_hash,
            "created_at": now,
            "expires_at": expires_at,
            "disabled_at": None,
        }
        details: dict[str, object] = {"role": role.value, "teams": sorted(team_set), "password": password is not None}
        if guest_access is not None:
            details["guest_access"] = guest_access
        if expires_at is not None:
            details["expires_at"] = expires_at.isoformat()

        def w(tx: Tx) -> User:
            if user_row(tx.conn, name) is not None:
                raise BadRequest(f"user {name!r} already exists")
            tx.conn.execute(insert(users).values(**values))
            tx.audit(AuditEvent(actor, "user.added", f"user/{name}", details))
            return user_from_row(_require_row(tx.conn, name))

        try:
            return await self.db.write(w)
        except IntegrityError:  # the same name added at the same moment by another process
            raise BadRequest(f"user {name!r} already exists") from None

    async def get(self, name: str) -> User:
        found = await self.db.read_first(select(users).where(users.c.name == name), user_from_row)
        if found is None:
            raise UnknownOperator(f"no user {name!r}")
        return found

    async def list(self) -> list[User]:
        rows = await self.db.read(lambda conn: list(conn.execute(select(users).order_by(users.c.name))))
        return [user_from_row(row) for row in rows]

    async def disable(self, name: str, *, actor: str) -> User:
        """Refuse the user's tokens and logins from now on, and end its dashboard sessions."""
        now = self.clock.now()

        def w(tx: Tx) -> User:
            row = _require_row(tx.conn, name)
            if row.disabled_at is None:
                _refuse_last_administrator(tx.conn, row)
                tx.conn.execute(update(users).where(users.c.id == row.id).values(disabled_at=now))
                tx.conn.execute(
                    update(sessions)
                    .where(sessions.c.user_id == row.id, sessions.c.ended_at.is_(None))
                    .values(ended_at=now)
                )
                tx.audit(AuditEvent(actor, "user.disabled", f"user/{name}"))
            return user_from_row(_require_row(tx.conn, name))

        return await self.db.write(w)

    async def enable(self, name: str, *, actor: str) -> User:
        def w(tx: Tx) -> User:
            row = _require_row(tx.conn, name)
            if row.disabled_at is not None:
                tx.conn.execute(update(users).where(users.c.id == row.id).values(disabled_at=None))
                tx.audit(AuditEvent(actor, "user.enabled", f"user/{name}"))
            return user_from_row(_require_row(tx.conn, name))

        return await self.db.write(w)

    async def set_password(self, name: str, password: str, *, actor: str) -> User:
        password_hash = await hash_password(password)

        def w(tx: Tx) -> User:
            row = _require_row(tx.conn, name)
            tx.conn.execute(update(users).where(users.c.id == row.id).values(password_hash=password_hash))
            tx.audit(AuditEvent(actor, "user.password_set", f"user/{name}"))
            return user_from_row(_require_row(tx.conn, name))

        return await self.db.write(w)

    def principal(
        self, user: User, token_scopes: frozenset[Permission] | None = None, token_id: int | None = None
    ) -> Principal:
        return principal_of(user, token_scopes, token_id)


def _refuse_last_administrator(conn: Connection, row: Row[Any]) -> None:
    """Nobody could add users, manage CAs or undo this through the API or the dashboard once the
    last enabled administrator is disabled: refuse it (the `tetra` command on the CA's own
    machine can still add another administrator first)."""
    if row.role != Role.ADMINISTRATOR.value:
        return
    others = conn.execute(
        select(func.count())
        .select_from(users)
        .where(users.c.role == Role.ADMINISTRATOR.value, users.c.disabled_at.is_(None), users.c.id != row.id)
    ).scalar_one()
    if not others:
        raise BadRequest(f"user {row.name!r} is the last enabled administrator; add another before disabling it")
