"""What every dashboard handler reads from its request: the CA, the server's configuration, and
the signed-in viewer (set by guard.py)."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.service import CertificateAuthority
from server.config import ServerConfig


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
VIEWER = "tetra_ui_viewer"  # request key: the Viewer, set for every page behind the login


def authority(request: web.Request) -> CertificateAuthority:
    return request.config_dict[request.config_dict[SETTINGS].ca_key]


def server_config(request: web.Request) -> ServerConfig:
    return request.config_dict[request.config_dict[SETTINGS].config_key]


def viewer(request: web.Request) -> Viewer:
    found: Viewer = request[VIEWER]
    return found


def require(request: web.Request, permission: Permission) -> Viewer:
    """The viewer, if its role grants ``permission`` (the one table, ca/operators/roles.py); else
    the 403 page. Changes are authorized again, and for teams, by the action they call."""
    seen = viewer(request)
    if not seen.principal.can(permission):
        raise web.HTTPForbidden(text=f"your role ({seen.principal.role}) does not allow {permission}\n")
    return seen
