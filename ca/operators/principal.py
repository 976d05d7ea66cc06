"""`Principal`: who is acting on one management request, and what it may touch."""

from __future__ import annotations

from dataclasses import dataclass

from ca.operators.roles import Permission, Role


@dataclass(frozen=True)
class Principal:
    """The user behind a token or a dashboard session, as authenticated for this request.

    `permissions` is already the intersection of the role's, the user's (a guest's access)
    and the token's scopes; `teams` is empty for a principal that sees every team
    (`all_teams`), which only roles outside `TEAM_BOUND` may be.
    """

    user: str
    role: Role
    permissions: frozenset[Permission]
    teams: frozenset[str] = frozenset()
    all_teams: bool = False
    token_id: int | None = None  # the API token used, None for a dashboard session

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions

    def sees_team(self, team: str | None) -> bool:
        """May this principal see an object owned by `team`? An object with no team is
        visible only to principals that see every team."""
        if self.all_teams:
            return True
        return team is not None and team in self.teams

    @property
    def actor(self) -> str:
        """The name audit events carry for this principal's changes (OPS-07)."""
        return f"user:{self.user}"
