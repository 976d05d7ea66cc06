"""Dashboard logins and their throttling in the database (OPS-06), and dashboard sessions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from ca.clock import FrozenClock
from ca.operators.errors import LoginRefused, LoginThrottled
from ca.operators.logins import ADDRESS_LIMIT, LOCK, USER_LIMIT
from ca.operators.plane import Operators
from ca.operators.roles import Role
from ca.operators.sessions import ABSOLUTE, IDLE, csrf_matches
from ca.operators.tables import sessions
from ca.store.db import Database

PASSWORD = "a long enough passphrase"
MINUTE = dt.timedelta(minutes=1)


async def test_login_refuses_wrong_name_and_password_alike(operators: Operators, clock: FrozenClock) -> None:
    await operators.users.add("gina", Role.AUDITOR, actor="cli:root", password=PASSWORD)
    principal = await operators.logins.login("gina", PASSWORD, "192.0.2.1")
    assert principal.user == "gina" and principal.token_id is None
    with pytest.raises(LoginRefused) as wrong_password:
        await operators.logins.login("gina", PASSWORD + "x", "192.0.2.1")
    with pytest.raises(LoginRefused) as wrong_name:
        await operators.logins.login("ghost", PASSWORD, "192.0.2.1")
    assert str(wrong_password.value) == str(wrong_name.value) == "wrong user name or password"
    await operators.users.add("nopass", Role.AUDITOR, actor="cli:root")  # API tokens only
    with pytest.raises(LoginRefused):
        await operators.logins.login("nopass", "", "192.0.2.1")
    await operators.users.disable("gina", actor="cli:root")
    with pytest.raises(LoginRefused):
        await operators.logins.login("gina", PASSWORD, "192.0.2.1")


async def test_user_lockout_after_five_failures(operators: Operators, clock: FrozenClock, audit_rows: Any) -> None:
    """OPS-06: five failures within 15 minutes lock the user for 15 minutes, from any address and
    even with the right password; the lockout is audited once; after the window the user logs in."""
    await operators.users.add("hank", Role.AUDITOR, actor="cli:root", password=PASSWORD)
    for attempt in range(USER_LIMIT):
        with pytest.raises(LoginRefused):
            await operators.logins.login("hank", f"guess {attempt}", f"198.51.100.{attempt}")
        clock.advance(MINUTE)
    locked_at = clock.now() - MINUTE
    for address in ("198.51.100.99", "203.0.113.5"):
        with pytest.raises(LoginThrottled) as throttled:
            await operators.logins.login("hank", PASSWORD, address)
        assert throttled.value.retry_after_seconds == (locked_at + LOCK - clock.now()).total_seconds()
    locks = [e for e in await audit_rows("user.locked") if e["target"] == "user/hank"]
    assert len(locks) == 1 and locks[0]["actor"] == "system" and PASSWORD not in str(locks[0])
    clock.advance(LOCK - MINUTE - dt.timedelta(seconds=1))
    with pytest.raises(LoginThrottled) as last_second:
        await operators.logins.login("hank", PASSWORD, "198.51.100.99")
    assert last_second.value.retry_after_seconds == 1
    clock.advance(dt.timedelta(seconds=1))
    assert (await operators.logins.login("hank", PASSWORD, "198.51.100.99")).user == "hank"


async def test_address_lockout_after_twenty_failures(operators: Operators, clock: FrozenClock, audit_rows: Any) -> None:
    """OPS-06: twenty failures from one address within 15 minutes, on as many names, lock that
    address (for a real user with the right password too); other addresses are not locked."""
    await operators.users.add("iris", Role.AUDITOR, actor="cli:root", password=PASSWORD)
    for attempt in range(ADDRESS_LIMIT):
        with pytest.raises(LoginRefused):
            await operators.logins.login(f"name{attempt}", "guess", "2001:db8::66")
    with pytest.raises(LoginThrottled):
        await operators.logins.login("iris", PASSWORD, "2001:db8::66")
    assert (await operators.logins.login("iris", PASSWORD, "2001:db8::1")).user == "iris"
    locks = await audit_rows("address.locked")
    assert [e["target"] for e in locks] == ["address/2001:db8::66"]
    assert not [e for e in await audit_rows("user.locked") if e["target"].startswith("user/name")]
    clock.advance(LOCK)
    assert (await operators.logins.login("iris", PASSWORD, "2001:db8::66")).user == "iris"


async def test_sessions_resume_until_logout_idle_or_absolute_limit(
    operators: Operators, clock: FrozenClock, db: Database
) -> None:
    """A session resumes with its CSRF token until logout, 30 minutes idle, 12 hours, or its
    user's disabling; the table holds only the cookie's digest (OPS-10)."""
    await operators.users.add("jane", Role.RA_OFFICER, actor="cli:root", password=PASSWORD)
    cookie, csrf = await operators.sessions.start("jane")
    resumed = await operators.sessions.resume(cookie)
    assert resumed is not None and resumed[0].user == "jane" and resumed[1] == csrf
    assert csrf_matches(cookie, csrf) and not csrf_matches(cookie, "0" * 64)
    assert await operators.sessions.resume(cookie + "x") is None
    stored = await db.read(lambda conn: [tuple(row) for row in conn.execute(select(sessions))])
    assert all(cookie not in str(row) and csrf not in str(row) for row in stored)

    # Kept alive by use up to the absolute limit, never beyond it.
    while clock.now() + IDLE - MINUTE < (await db.read(_created_at)) + ABSOLUTE:
        clock.advance(IDLE - MINUTE)
        assert await operators.sessions.resume(cookie) is not None
    clock.advance(IDLE - MINUTE)
    assert await operators.sessions.resume(cookie) is None

    idle, _ = await operators.sessions.start("jane")
    clock.advance(IDLE + dt.timedelta(seconds=1))
    assert await operators.sessions.resume(idle) is None

    ended, _ = await operators.sessions.start("jane")
    await operators.sessions.end(ended)
    assert await operators.sessions.resume(ended) is None

    disabled, _ = await operators.sessions.start("jane")
    await operators.users.disable("jane", actor="cli:root")
    await operators.users.enable("jane", actor="cli:root")
    assert await operators.sessions.resume(disabled) is None  # disabling ended it for good


def _created_at(conn: Any) -> dt.datetime:
    created: dt.datetime = conn.execute(select(sessions.c.created_at).order_by(sessions.c.id)).scalars().first()
    return created
