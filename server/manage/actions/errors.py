"""The refusals actions raise, beyond the core's own `CAError`s."""

from __future__ import annotations

from ca.errors import CAError, FailureReason, NotAuthorized, PolicyViolation


class NotVisible(CAError):
    """No such object, or one outside the principal's teams: the same refusal either way, so
    that asking tells nobody whether another team's object exists (OPS-02)."""

    reason = FailureReason.UNKNOWN_CERTIFICATE

    def __init__(self, what: str) -> None:
        super().__init__(f"no such {what}")


class Forbidden(NotAuthorized):
    """The principal lacks the permission, or names a team that is not its own."""


class FourEyesRefused(NotAuthorized):
    """A profile with four_eyes: the approver made the request itself (OPS-03)."""


class Conflict(CAError):
    """The object is not in a state that allows this (a request already decided)."""

    reason = FailureReason.MALFORMED


class NotForTeam(PolicyViolation):
    """A profile limited to teams that the request's team is not one of."""
