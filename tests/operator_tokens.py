"""Bearer tokens for tests of the management plane, made by the real user and token stores.

In-process (the app already running, `ca` its CertificateAuthority):

    token = await make_token(ca, "ra-officer", teams=["web"])
    await client.get("/api/v1/certificates", headers=bearer(token))

For a `tetra serve` process (tests/integration/serverproc.py), before or while it runs, on
its database:

    token = issue_token(database_url, role="administrator")

The demo config `tetra init` writes turns the plane on: `[manage] listen = "127.0.0.1:8444"`
(override with TETRA_MANAGE__LISTEN, or TETRA_MANAGE__ALSO_ON='["http"]' to answer /api/v1 on
the plain HTTP listener as well).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Iterable

from ca.operators.plane import Operators
from ca.operators.roles import Permission
from ca.service import CertificateAuthority
from ca.store.db import Database

_NAMES = itertools.count(1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def make_token(
    ca: CertificateAuthority,
    role: str = "administrator",
    *,
    name: str | None = None,
    teams: Iterable[str] = (),
    scopes: frozenset[Permission] | None = None,
    guest_access: str | None = None,
) -> str:
    """A new user of ``role`` (named ``name``, or after its role) and a token of it. A guest
    (who must have one team, an access and an expiry) gets read-only access and a day."""
    if role == "guest":
        guest_access = guest_access or "read"
    return await _make(ca.operators, role, name, teams, scopes, guest_access)


def issue_token(
    database_url: str,
    role: str = "administrator",
    *,
    name: str | None = None,
    teams: Iterable[str] = (),
    scopes: frozenset[Permission] | None = None,
) -> str:
    """The same, straight on a database (a server process's, say): for tests outside the app."""

    async def run() -> str:
        db = Database(database_url)
        try:
            return await _make(Operators(db, db.clock), role, name, teams, scopes, None)
        finally:
            await db.close()

    return asyncio.run(run())


async def _make(
    operators: Operators,
    role: str,
    name: str | None,
    teams: Iterable[str],
    scopes: frozenset[Permission] | None,
    guest_access: str | None,
) -> str:
    user = name or f"{role}-{next(_NAMES)}"
    expires = operators.users.clock.now() + dt.timedelta(days=1) if role == "guest" else None
    await operators.users.add(user, role, frozenset(teams), actor="test", guest_access=guest_access, expires_at=expires)
    _, secret = await operators.tokens.create(user, label="test", scopes=scopes, expires_at=None, actor="test")
    return secret
