"""The two questions every action asks first: may this principal do this at all (its
permissions), and may it touch this object (its teams)."""

from __future__ import annotations

from ca.operators.principal import Principal
from ca.operators.roles import Permission
from server.manage.actions.errors import Forbidden, NotVisible


def require(principal: Principal, permission: Permission) -> None:
    """Refuse a principal that lacks ``permission`` (its role, a guest's access or the token's
    scopes leave it out). The router asks this for each endpoint's declared permission, the
    actions for their own, the dashboard for each form: the one check."""
    if not principal.can(permission):
        raise Forbidden(f"this operation needs the permission {permission.value}")


def visible(principal: Principal, team: str | None, what: str) -> None:
    """Refuse, as if it did not exist, an object of a team the principal does not see."""
    if not principal.sees_team(team):
        raise NotVisible(what)


def own_team(principal: Principal, team: str | None) -> str | None:
    """The team a new object of this principal belongs to: ``team`` if given (one of its own,
    unless it sees every team), else its only team. A principal of several teams must say which."""
    if team is not None:
        if not principal.all_teams and team not in principal.teams:
            raise Forbidden(f"team {team!r} is not one of yours ({', '.join(sorted(principal.teams))})")
        return team
    if principal.all_teams:
        return None
    if len(principal.teams) == 1:
        return next(iter(principal.teams))
    raise Forbidden(f"name the team (one of {', '.join(sorted(principal.teams))})")
