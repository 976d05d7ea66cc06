"""Users: who may exist, what each may do (the permission intersection for guests and scoped
tokens), and the audit event every change writes without a secret in it (OPS-07, OPS-10)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from ca.clock import FrozenClock
from ca.errors import BadRequest
from ca.operators.errors import UnknownOperator
from ca.operators.plane import Operators
from ca.operators.roles import GUEST_ACCESS, ROLE_PERMISSIONS, Permission, Role
from ca.operators.tables import users
from ca.store.db import Database

DAY = dt.timedelta(days=1)


REFUSED: list[tuple[str, str, list[str], dict[str, Any], str]] = [
    ("", "auditor", [], {}, "user name"),
    ("bad name", "auditor", [], {}, "user name"),
    ("x" * 65, "auditor", [], {}, "user name"),
    ("ok", "overlord", [], {}, "unknown role"),
    ("ok", "requester", [], {}, "at least one team"),
    ("ok", "requester", ["bad team"], {}, "team name"),
    ("ok", "guest", ["a", "b"], {"guest_access": "read", "expires": True}, "exactly one team"),
    ("ok", "guest", ["a"], {"guest_access": "read"}, "needs an expiry"),
    ("ok", "guest", ["a"], {"guest_access": "write", "expires": True}, "guest access"),
    ("ok", "auditor", [], {"guest_access": "read"}, "only a guest"),
    ("ok", "auditor", [], {"password": "short"}, "at least 12"),
    ("ok", "auditor", [], {"expires": -1}, "in the past"),
]


async def test_add_refuses_what_may_not_exist(operators: Operators, clock: FrozenClock) -> None:
    """Each invalid user is refused with a message naming the rule, and nothing is stored."""
    for name, role, teams, extra, message in REFUSED:
        options = dict(extra)
        expires = options.pop("expires", 0)
        expires_at = clock.now() + expires * DAY if expires else None
        with pytest.raises(BadRequest, match=message):
            await operators.users.add(name, role, teams, actor="cli:test", expires_at=expires_at, **options)
    assert "ok" not in {user.name for user in await operators.users.list()}


async def test_add_get_list_disable_enable(operators: Operators, clock: FrozenClock, audit_rows: Any) -> None:
    """OPS-07: each change is one audit event naming the actor; no-op changes write none."""
    added = await operators.users.add("alice", Role.REQUESTER, ["web", "db"], actor="cli:root")
    assert added.teams == frozenset({"web", "db"}) and not added.has_password and added.created_at == clock.now()
    assert await operators.users.get("alice") == added
    with pytest.raises(BadRequest, match="already exists"):
        await operators.users.add("alice", Role.AUDITOR, actor="cli:root")
    disabled = await operators.users.disable("alice", actor="cli:root")
    assert disabled.disabled_at == clock.now()
    await operators.users.disable("alice", actor="cli:root")  # already disabled: no second event
    assert (await operators.users.enable("alice", actor="user:admin")).disabled_at is None
    assert "alice" in [user.name for user in await operators.users.list()]
    with pytest.raises(UnknownOperator):
        await operators.users.get("nobody")
    with pytest.raises(UnknownOperator):
        await operators.users.disable("nobody", actor="cli:root")
    events = [(e["actor"], e["action"], e["target"]) for e in await audit_rows("user.") if e["target"] == "user/alice"]
    assert events == [
        ("cli:root", "user.added", "user/alice"),
        ("cli:root", "user.disabled", "user/alice"),
        ("user:admin", "user.enabled", "user/alice"),
    ]


async def test_passwords_are_argon2id_and_never_audited(operators: Operators, db: Database, audit_rows: Any) -> None:
    """OPS-10: the users table holds an argon2id hash, the audit log not even that."""
    secret = "correct horse battery staple"
    user = await operators.users.add("bob", Role.AUDITOR, actor="cli:root", password=secret)
    assert user.has_password
    await operators.users.set_password("bob", secret + "!", actor="cli:root")
    stored = await db.read(
        lambda conn: conn.execute(select(users.c.password_hash).where(users.c.name == "bob")).scalar()
    )
    assert isinstance(stored, str) and stored.startswith("$argon2id$") and secret not in stored
    events = [e for e in await audit_rows("user.") if e["target"] == "user/bob"]
    assert [e["action"] for e in events] == ["user.added", "user.password_set"]
    assert all(secret not in str(e) and "$argon2" not in str(e) for e in events)


async def test_principal_intersects_role_guest_access_and_scopes(operators: Operators, clock: FrozenClock) -> None:
    """A guest gets its role's permissions narrowed by its access; a token's scopes narrow further."""
    admin = await operators.users.add("root", Role.ADMINISTRATOR, actor="cli:test")
    full = operators.users.principal(admin)
    assert full.permissions == frozenset(Permission) and full.all_teams and full.actor == "user:root"
    scoped = operators.users.principal(admin, frozenset({Permission.AUDIT_READ}), token_id=7)
    assert scoped.permissions == {Permission.AUDIT_READ} and scoped.token_id == 7

    guest = await operators.users.add(
        "visitor", Role.GUEST, ["web"], actor="cli:test", guest_access="request", expires_at=clock.now() + DAY
    )
    principal = operators.users.principal(guest)
    assert principal.permissions == ROLE_PERMISSIONS[Role.GUEST] & GUEST_ACCESS["request"]
    assert principal.can(Permission.CERTIFICATES_REQUEST) and not principal.can(Permission.CERTIFICATES_READ)
    assert not principal.all_teams and principal.sees_team("web") and not principal.sees_team("db")
    # A scope the guest's access does not grant stays out, whatever the token says.
    narrowed = operators.users.principal(guest, frozenset({Permission.CERTIFICATES_READ, Permission.REQUESTS_READ}))
    assert narrowed.permissions == {Permission.REQUESTS_READ}

    ra = await operators.users.add("officer", Role.RA_OFFICER, ["web"], actor="cli:test")
    assert not operators.users.principal(ra).all_teams  # an RA officer given teams is held to them


async def test_the_last_administrator_cannot_be_disabled(operators: Operators, audit_rows: Any) -> None:
    """Disabling the last enabled administrator would leave nobody to manage users or CAs through
    the API or the dashboard: refused, nothing changed, nothing audited; with a second one it is allowed."""
    await operators.users.add("root-admin", Role.ADMINISTRATOR, actor="cli:root")
    for user in await operators.users.list():  # the template CA's own admin, if any
        if user.role == Role.ADMINISTRATOR and user.name != "root-admin":
            await operators.users.disable(user.name, actor="cli:root")
    disabled_before = await audit_rows("user.disabled")
    with pytest.raises(BadRequest, match="last enabled administrator"):
        await operators.users.disable("root-admin", actor="cli:root")
    assert (await operators.users.get("root-admin")).disabled_at is None
    assert await audit_rows("user.disabled") == disabled_before
    await operators.users.add("second-admin", Role.ADMINISTRATOR, actor="cli:root")
    assert (await operators.users.disable("root-admin", actor="cli:root")).disabled_at is not None
    with pytest.raises(BadRequest, match="last enabled administrator"):
        await operators.users.disable("second-admin", actor="cli:root")
