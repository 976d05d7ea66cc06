"""Who is asking, and whether a POST really comes from the dashboard's own page (OPS-04).

Every page but the login form and the static files needs a live session: the `tetra_session`
cookie is resumed through the operators' session store, which answers the Principal and the
session's CSRF token. A GET without one is sent to the login form; anything else gets 401.

A POST (every change) is refused with 403 unless
- `Sec-Fetch-Site`, when the browser sends it, says same-origin (or none: typed by the user),
- `Origin`, when sent, is this very listener's origin, and
- the form field `csrf` or the `X-CSRF-Token` header (htmx sends it, hx-headers) equals the
  session's token, compared in constant time.
The login form has no session yet: its token is the double-submitted `tetra_login_csrf` cookie.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from server.manage.ui.context import VIEWER, Viewer, authority

SESSION_COOKIE = "tetra_session"
LOGIN_COOKIE = "tetra_login_csrf"
COOKIE_PATH = "/ui/"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
OPEN_PATHS = ("/ui/login", "/ui/static/")  # reachable without a session


def cookie_options(request: web.Request) -> dict[str, object]:
    """HttpOnly, SameSite=Strict, scoped to /ui/, and Secure when the page came over HTTPS."""
    return {"path": COOKIE_PATH, "httponly": True, "samesite": "Strict", "secure": request.secure}


def _same_origin(request: web.Request) -> bool:
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin == f"{request.scheme}://{request.host}"


async def submitted_token(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def check_csrf(request: web.Request, expected: str) -> None:
    """Raise 403 unless this POST is same-origin and carries ``expected`` (OPS-04)."""
    if not _same_origin(request):
        raise web.HTTPForbidden(text="refused: the form was not sent from this dashboard (cross-site request)\n")
    given = await submitted_token(request)
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPForbidden(text="refused: the form's CSRF token is missing or wrong; reload the page\n")


@web.middleware
async def session_guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resume the session (or send to the login form), and check every POST's CSRF token."""
    if request.path.startswith(OPEN_PATHS):
        return await handler(request)
    secret = request.cookies.get(SESSION_COOKIE, "")
    resumed = await authority(request).operators.sessions.resume(secret) if secret else None
    if resumed is None:
        if request.method == "GET":
            raise web.HTTPSeeOther(f"/ui/login?next={request.rel_url.path}")
        raise web.HTTPUnauthorized(text="your session has ended; sign in again\n")
    principal, csrf = resumed
    if request.method not in ("GET", "HEAD"):
        await check_csrf(request, csrf)
    request[VIEWER] = Viewer(principal, csrf)
    return await handler(request)
