"""`Operators`: the operator plane's stores, as the CA exposes them (`ca.operators`)."""

from __future__ import annotations

from ca.clock import Clock
from ca.operators.logins import Logins
from ca.operators.sessions import SessionStore
from ca.operators.tokens import TokenStore
from ca.operators.users import UserStore
from ca.store.db import Database


class Operators:
    """Users, their API tokens, dashboard logins and sessions, on the CA's database."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.users = UserStore(db, clock)
        self.tokens = TokenStore(db, clock)
        self.logins = Logins(db, clock)
        self.sessions = SessionStore(db, clock)
