"""The management plane's tables: users, their API tokens, dashboard sessions, and failed logins.

No secret is stored as given: passwords as argon2id hashes, API tokens and session cookies as
the SHA-256 of a random value of full entropy (which a lookup needs and a plain digest makes
safe), so a copy of the database lets nobody act as anybody (OPS-10).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ca.store.tables import Base, Id, UTCDateTime, table_of

NAME_MAX = 64  # a user name, a team name


class UserRow(Base):
    """One local user: a role, the teams it belongs to, and how long it may act."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # ca.operators.roles.Role
    teams: Mapped[str] = mapped_column(Text)  # JSON list of team names, sorted
    guest_access: Mapped[str | None] = mapped_column(String(16))  # "read" | "request", guests only
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id; None: API tokens only
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # guests must have one
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ApiTokenRow(Base):
    """A bearer token of one user: scoped (a subset of the user's permissions), expiring, revocable."""

    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_user", "user_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"))
    label: Mapped[str] = mapped_column(String(NAME_MAX))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the token
    scopes: Mapped[str | None] = mapped_column(Text)  # JSON list of permissions; None: all the user's
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class SessionRow(Base):
    """A dashboard login: the cookie's digest, idle and absolute limits, ended at logout."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user", "user_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(Id, ForeignKey("users.id"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 hex of the cookie value
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class LoginFailureRow(Base):
    """One wrong password, kept long enough to throttle by user and by address across processes."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_user", "user_name", "at"),
        Index("ix_login_failures_address", "address", "at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_name: Mapped[str] = mapped_column(String(NAME_MAX))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


users = table_of(UserRow)
api_tokens = table_of(ApiTokenRow)
sessions = table_of(SessionRow)
login_failures = table_of(LoginFailureRow)
