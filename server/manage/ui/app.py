"""`ui_app()`: the dashboard as an aiohttp sub-application, mounted at /ui/ on the management
listener.

Pages are Jinja2 templates with autoescaping on; every text shown goes through `visible()`
first, which writes control characters as \\xNN, so a subject holding `<script>` or a SAN with
an escape sequence shows as text (OPS-09). Responses carry a strict Content-Security-Policy:
scripts only from /ui/static/ (htmx), nothing framed, forms posted only here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.typedefs import Handler
from markupsafe import Markup

from ca.errors import CAError
from ca.service import CertificateAuthority
from server.config import ServerConfig
from server.manage.problems import TYPES, Problem
from server.manage.ui import approvals, assets, authorities, certificates, insight, login, overview
from server.manage.ui.context import SETTINGS, UiSettings, render
from server.manage.ui.guard import session_guard

UI_PREFIX = "/ui"  # where the hosting application mounts the dashboard
TEMPLATES = Path(__file__).parent / "templates"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def visible(value: Any) -> Any:
    """What `{{ ... }}` prints: control characters as \\xNN (OPS-09); markup we made is left as is."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value)


def _error_page(request: web.Request, values: dict[str, Any]) -> web.Response:
    """The error page; for an htmx request, the message alone, put in the page's alert region
    (#problems) instead of the element the request meant to replace."""
    if request.headers.get("HX-Request") != "true":
        return render("error.html", request, values, status=values["status"])
    response = render("problem_fragment.html", request, values, status=values["status"])
    response.headers.update({"HX-Retarget": "#problems", "HX-Reswap": "innerHTML"})
    return response


@web.middleware
async def error_pages_and_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except CAError as exc:  # an action's refusal, numbered and worded as the API's problem documents
        problem = Problem.from_ca_error(exc)
        values = {"status": problem.status, "reason": TYPES[problem.code][1], "detail": problem.detail}
        response = _error_page(request, values)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type != "text/plain":
            raise
        response = _error_page(
            request, {"status": exc.status, "reason": exc.reason, "detail": (exc.text or "").strip()}
        )
        response.headers.update({k: v for k, v in exc.headers.items() if k in ("Retry-After", "WWW-Authenticate")})
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if not request.path.startswith("/ui/static/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def ui_app(ca_key: web.AppKey[CertificateAuthority], config_key: web.AppKey[ServerConfig]) -> web.Application:
    """The dashboard; mount it with ``app.add_subapp(UI_PREFIX, ui_app(CA, CONFIG))``."""
    app = web.Application(middlewares=[error_pages_and_headers, session_guard], client_max_size=64 * 1024)
    app[SETTINGS] = UiSettings(ca_key, config_key)
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        finalize=visible,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    assets.warn_if_missing()
    r = app.router
    r.add_get("/static/{name}", assets.static_file)
    r.add_get("/login", login.login_page)
    r.add_post("/login", login.login_submit)
    r.add_post("/logout", login.logout)
    r.add_get("/", overview.health)
    r.add_get("/expiring", certificates.expiring)
    r.add_get("/certificates", certificates.search)
    r.add_get("/certificates/{id:[0-9]+}", certificates.show)
    r.add_post("/certificates/{id:[0-9]+}/revoke", certificates.revoke)
    r.add_post("/certificates/{id:[0-9]+}/edit", certificates.edit)
    r.add_get("/approvals", approvals.queue)
    r.add_post("/approvals/{id:[0-9]+}/approve", approvals.approve)
    r.add_post("/approvals/{id:[0-9]+}/reject", approvals.reject)
    r.add_get("/discovery", insight.discovery)
    r.add_get("/issuance", insight.issuance)
    r.add_get("/audit", insight.audit)
    r.add_get("/cas", authorities.cas_and_profiles)
    r.add_get("/profiles/{profile}.mobileconfig", authorities.mobileconfig)
    return app
