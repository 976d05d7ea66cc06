"""The operator plane's records as the rest of the code sees them: never a hash, never a secret.

A `User` says whether it has a password (`has_password`), never what it is; an `ApiToken` is
its metadata only, the secret having been shown once at creation (OPS-10).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ca.operators.roles import Permission, Role


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    teams: frozenset[str]
    guest_access: str | None  # "read" | "request" for guests, None for every other role
    created_at: dt.datetime
    expires_at: dt.datetime | None
    disabled_at: dt.datetime | None
    has_password: bool

    def refusal(self, now: dt.datetime) -> str | None:
        """Why this user may not act now ("user-disabled", "user-expired"), or None. Tokens,
        logins and sessions all ask here, so none can forget a disabled or expired user."""
        if self.disabled_at is not None:
            return "user-disabled"
        if self.expires_at is not None and self.expires_at <= now:
            return "user-expired"
        return None


@dataclass(frozen=True)
class ApiToken:
    id: int
    user: str
    label: str
    scopes: frozenset[Permission] | None  # None: everything the user may do
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
