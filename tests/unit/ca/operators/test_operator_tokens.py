"""API tokens: shown once, stored as a digest, refused for each reason the server logs (OPS-05),
narrowed by their scopes, and never in a listing or the audit log (OPS-10)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from ca.clock import FrozenClock
from ca.errors import BadRequest
from ca.operators.errors import TokenRefused, UnknownOperator
from ca.operators.plane import Operators
from ca.operators.roles import ROLE_PERMISSIONS, Permission, Role
from ca.operators.tables import api_tokens
from ca.operators.tokens import requested_scopes
from ca.store.db import Database

DAY = dt.timedelta(days=1)


async def refusal(operators: Operators, secret: str) -> str:
    with pytest.raises(TokenRefused) as refused:
        await operators.tokens.authenticate(secret)
    return refused.value.reason


async def test_token_authenticates_then_is_refused_for_each_reason(operators: Operators, clock: FrozenClock) -> None:
    """OPS-05: an expired, revoked, forged or unknown token, or one of a disabled or expired
    user, is refused, each with its own reason for the log."""
    await operators.users.add("carol", Role.RA_OFFICER, actor="cli:root")
    token, secret = await operators.tokens.create(
        "carol", label="ci", scopes=None, expires_at=clock.now() + DAY, actor="cli:root"
    )
    assert secret.startswith("tetra_") and len(secret) > 40
    principal = await operators.tokens.authenticate(secret)
    assert principal.user == "carol" and principal.token_id == token.id and principal.can(Permission.REQUESTS_DECIDE)

    assert await refusal(operators, "tetra_" + "A" * 43) == "unknown"  # forged: well-formed, never issued
    assert await refusal(operators, secret[:-1]) == "unknown"  # altered
    assert await refusal(operators, "not-even-a-token") == "unknown"

    await operators.users.disable("carol", actor="cli:root")
    assert await refusal(operators, secret) == "user-disabled"
    await operators.users.enable("carol", actor="cli:root")
    assert (await operators.tokens.authenticate(secret)).user == "carol"

    clock.advance(DAY)
    assert await refusal(operators, secret) == "expired"

    _, lasting = await operators.tokens.create("carol", label="cron", scopes=None, expires_at=None, actor="cli:root")
    revoked = await operators.tokens.revoke(token.id, actor="cli:root")
    assert revoked.revoked_at == clock.now()
    assert await refusal(operators, secret) == "revoked"
    assert (await operators.tokens.authenticate(lasting)).user == "carol"


async def test_token_of_an_expired_guest_is_refused(operators: Operators, clock: FrozenClock) -> None:
    """OPS-05: a guest's token dies with the guest's expiry."""
    await operators.users.add(
        "temp", Role.GUEST, ["web"], actor="cli:root", guest_access="read", expires_at=clock.now() + DAY
    )
    _, secret = await operators.tokens.create("temp", label="t", scopes=None, expires_at=None, actor="cli:root")
    assert (await operators.tokens.authenticate(secret)).permissions == {
        Permission.CERTIFICATES_READ,
        Permission.REQUESTS_READ,
        Permission.PROFILES_READ,
    }
    clock.advance(DAY)
    assert await refusal(operators, secret) == "user-expired"


async def test_scopes_narrow_and_cannot_widen(operators: Operators) -> None:
    await operators.users.add("dave", Role.REQUESTER, ["web"], actor="cli:root")
    _, secret = await operators.tokens.create(
        "dave", label="read", scopes=frozenset({Permission.CERTIFICATES_READ}), expires_at=None, actor="cli:root"
    )
    principal = await operators.tokens.authenticate(secret)
    assert principal.permissions == {Permission.CERTIFICATES_READ} and principal.teams == {"web"}
    with pytest.raises(BadRequest, match=r"does not hold these permissions, so its token cannot: users\.manage"):
        await operators.tokens.create(
            "dave", label="x", scopes=frozenset({Permission.USERS_MANAGE}), expires_at=None, actor="cli:root"
        )
    with pytest.raises(UnknownOperator):
        await operators.tokens.create("nobody", label="x", scopes=None, expires_at=None, actor="cli:root")
    with pytest.raises(UnknownOperator):
        await operators.tokens.revoke(999_999, actor="cli:root")


async def test_last_used_is_written_at_most_once_a_minute(operators: Operators, clock: FrozenClock) -> None:
    await operators.users.add("erin", Role.AUDITOR, actor="cli:root")
    token, secret = await operators.tokens.create("erin", label="l", scopes=None, expires_at=None, actor="cli:root")
    assert token.last_used_at is None
    first = clock.now()
    await operators.tokens.authenticate(secret)
    clock.advance(dt.timedelta(seconds=30))
    await operators.tokens.authenticate(secret)
    assert (await operators.tokens.get(token.id)).last_used_at == first
    clock.advance(dt.timedelta(seconds=30))
    await operators.tokens.authenticate(secret)
    assert (await operators.tokens.get(token.id)).last_used_at == clock.now()


async def test_no_token_in_the_database_a_listing_or_the_audit_log(
    operators: Operators, db: Database, audit_rows: Any
) -> None:
    """OPS-10: only the token's SHA-256 is stored; lists and audit events hold neither."""
    await operators.users.add("frank", Role.ADMINISTRATOR, actor="cli:root")
    token, secret = await operators.tokens.create("frank", label="ops", scopes=None, expires_at=None, actor="cli:root")
    await operators.tokens.revoke(token.id, actor="cli:root")
    stored = await db.read(lambda conn: [tuple(row) for row in conn.execute(select(api_tokens))])
    body = secret.removeprefix("tetra_")
    assert stored and all(body not in str(row) for row in stored)
    assert [t.id for t in await operators.tokens.list("frank")] == [token.id]
    assert all(body not in repr(t) for t in await operators.tokens.list())
    events = [e for e in await audit_rows("token.") if e["target"] == "user/frank"]
    assert [(e["actor"], e["action"]) for e in events] == [("cli:root", "token.created"), ("cli:root", "token.revoked")]
    assert all(body not in str(e) for e in events)


def test_requested_scopes_read_means_the_reads_the_user_holds() -> None:
    held = ROLE_PERMISSIONS[Role.REQUESTER]
    assert requested_scopes([], held) is None
    assert requested_scopes(["read"], held) == frozenset(p for p in held if p.reads_only)
    assert requested_scopes(["read", "certificates.request"], held) == frozenset(
        {
            Permission.CERTIFICATES_READ,
            Permission.REQUESTS_READ,
            Permission.PROFILES_READ,
            Permission.CERTIFICATES_REQUEST,
        }
    )
    assert requested_scopes(["users.manage"], held) == frozenset({Permission.USERS_MANAGE})  # create refuses it
    with pytest.raises(ValueError, match="unknown scope 'all'"):
        requested_scopes(["all"], held)
