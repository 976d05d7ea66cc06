"""What every dashboard handler reads from its request: the CA, the server's configuration, and
the signed-in viewer (set by guard.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.service import CertificateAuthority
from server.config import ServerConfig
from server.manage.actions import access
from server.manage.ui import assets


@dataclass(frozen=True)
class UiSettings:
    """Where the dashboard finds the CA: under the key the hosting application keeps it (the CA
    is built when the server starts, after the routes are)."""

    ca_key: web.AppKey[CertificateAuthority]
    config_key: web.AppKey[ServerConfig]


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of one request, and its session's CSRF token (every form carries it)."""

    principal: Principal
    csrf: str


SETTINGS = web.AppKey("ui_settings", UiSettings)
VIEWER = web.RequestKey("tetra_ui_viewer", Viewer)  # set by guard.py for every page behind the login


def authority(request: web.Request) -> CertificateAuthority:
    return request.config_dict[request.config_dict[SETTINGS].ca_key]


def server_config(request: web.Request) -> ServerConfig:
    return request.config_dict[request.config_dict[SETTINGS].config_key]


def viewer(request: web.Request) -> Viewer:
    found: Viewer = request[VIEWER]
    return found


def require(request: web.Request, permission: Permission) -> Viewer:
    """The viewer, if its role grants ``permission``; else `Forbidden`, the 403 page. The check
    is the actions' own (server/manage/actions/access.py); a change is checked again, for its
    teams too, by the action it calls."""
    seen = viewer(request)
    access.require(seen.principal, permission)
    return seen


def require_every_team(request: web.Request, permission: Permission) -> Viewer:
    """For a page that sums up every team's objects and has no team-scoped action (health,
    issuance): ``permission``, and a viewer that sees every
    team. A viewer limited to teams gets "no such page", as the actions refuse an object with
    no team (access.visible)."""
    seen = require(request, permission)
    access.visible(seen.principal, None, "page")
    return seen


@dataclass(frozen=True)
class NavItem:
    path: str
    label: str
    permission: Permission  # the permission that shows the link
    every_team: bool = False  # the page needs a viewer that sees every team (require_every_team)

    def shown_to(self, principal: Principal) -> bool:
        return principal.can(self.permission) and (not self.every_team or principal.sees_team(None))


NAV = (
    NavItem("/ui/", "Health", Permission.CAS_READ, every_team=True),
    NavItem("/ui/expiring", "Expiring", Permission.CERTIFICATES_READ),
    NavItem("/ui/approvals", "Approvals", Permission.REQUESTS_READ),
    NavItem("/ui/certificates", "Inventory", Permission.CERTIFICATES_READ),
    NavItem("/ui/discovery", "Discovery", Permission.DISCOVERY_READ),
    NavItem("/ui/issuance", "Issuance", Permission.CAS_READ, every_team=True),
    NavItem("/ui/audit", "Audit log", Permission.AUDIT_READ),
    NavItem("/ui/cas", "CAs and profiles", Permission.PROFILES_READ),
)


def first_page(principal: Principal) -> str:
    """Where a viewer lands: the first page of the navigation it may open."""
    return next((item.path for item in NAV if item.shown_to(principal)), "/ui/cas")


def render(template: str, request: web.Request, values: dict[str, Any], *, status: int = 200) -> web.Response:
    """A page: ``values`` and what the layout needs (the viewer, its navigation, the CSRF field)."""
    seen: Viewer | None = request.get(VIEWER)
    nav = [(item.path, item.label) for item in NAV if seen is not None and item.shown_to(seen.principal)]
    layout = {"viewer": seen, "nav": nav, "current": request.path, "csrf_field": "csrf", "has_htmx": assets.has_htmx()}
    return aiohttp_jinja2.render_template(template, request, {**layout, **values}, status=status)
