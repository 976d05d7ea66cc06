"""Which connections may reach the management paths (/api/v1, /ui/): those accepted by the
manage listener, or by a public listener that [manage] also_on names. Elsewhere they do not
exist (a plain 404), so an enrolment listener open to the world offers no operator login,
no token check to probe, no API to map.

The decision is made by the socket the request came in on (its listener's guard,
server/limits.py), never by anything the client sends: a Host header or an
X-Forwarded-For can be forged, a socket cannot.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from server.manage.settings import MANAGE_LISTENER, ManageSettings

MANAGEMENT_PREFIXES = ("/api/v1", "/ui")


def listener_name(request: web.BaseRequest) -> str | None:
    """The name of the listener whose socket accepted ``request`` ("http", "https", "manage"),
    None for a connection no guarded listener made."""
    guard = getattr(request.protocol, "guard", None)
    name = getattr(guard, "name", None)
    return name if isinstance(name, str) else None


def is_management_path(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in MANAGEMENT_PREFIXES)


def management_gate(settings: ManageSettings) -> Middleware:
    allowed = settings.listeners

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        listener = listener_name(request)
        if is_management_path(request.path):
            if listener not in allowed:
                raise web.HTTPNotFound()
        elif listener == MANAGE_LISTENER:
            raise web.HTTPNotFound()  # the manage listener serves the management plane only
        return await handler(request)

    return gate
