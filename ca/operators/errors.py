"""Why an operator was not let in. Each carries what the server logs; what the client is told
is deliberately less (an API client reads only "invalid token", a login form only "wrong name
or password"), so that a refusal never tells a guesser which part was right (OPS-05, OPS-06)."""

from __future__ import annotations

from ca.errors import BadRequest

TOKEN_REFUSALS = ("unknown", "expired", "revoked", "user-disabled", "user-expired")


class UnknownOperator(BadRequest):
    """No such user or API token (an operator's command named one that does not exist)."""


class TokenRefused(Exception):
    """An API token that does not authenticate. `reason` (one of TOKEN_REFUSALS) is for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"API token refused: {reason}")
        self.reason = reason


class LoginRefused(Exception):
    """A wrong user name or a wrong password: one message for both."""

    def __init__(self) -> None:
        super().__init__("wrong user name or password")


class LoginThrottled(Exception):
    """Too many failed logins for this user or from this address; try again later."""

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after_seconds} seconds")
        self.retry_after_seconds = retry_after_seconds
