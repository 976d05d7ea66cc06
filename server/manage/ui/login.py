"""The login form, its answers (a wrong password: 401; too many: 429 with Retry-After), and logout.

The password is checked and throttled by the operators' login service (ca/operators), never
here; a success starts a session whose secret becomes the `tetra_session` cookie.
"""

from __future__ import annotations

import secrets

from aiohttp import web

from ca.operators.errors import LoginRefused, LoginThrottled
from server.manage.ui.context import authority, render, viewer
from server.manage.ui.guard import CSRF_FIELD, LOGIN_COOKIE, SESSION_COOKIE, check_csrf, cookie_options

HOME = "/ui/"


def _next_page(value: object) -> str:
    """Where to go after signing in: a dashboard path only, never another site."""
    if isinstance(value, str) and value.startswith("/ui/") and "//" not in value and "\\" not in value:
        return value
    return HOME


def _form(
    request: web.Request, *, status: int = 200, error: str = "", user: str = "", next_page: str = HOME
) -> web.Response:
    token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        "login.html",
        request,
        {"csrf": token, "error": error, "user": user, "next_page": next_page, "csrf_field": CSRF_FIELD},
        status=status,
    )
    response.set_cookie(LOGIN_COOKIE, token, **cookie_options(request))  # type: ignore[arg-type]
    return response


async def login_page(request: web.Request) -> web.Response:
    return _form(request, next_page=_next_page(request.query.get("next")))


async def login_submit(request: web.Request) -> web.Response:
    await check_csrf(request, request.cookies.get(LOGIN_COOKIE, ""))
    form = await request.post()
    user, password = str(form.get("user", "")), str(form.get("password", ""))
    next_page = _next_page(form.get("next"))
    operators = authority(request).operators
    try:
        principal = await operators.logins.login(user, password, request.remote or "")
    except LoginThrottled as exc:
        seconds = max(1, int(exc.retry_after_seconds))
        response = _form(
            request,
            status=429,
            user=user,
            next_page=next_page,
            error=f"Too many failed sign-ins. Try again in {seconds} seconds.",
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    except LoginRefused:
        return _form(request, status=401, user=user, next_page=next_page, error="Wrong user name or password.")
    secret, _csrf = await operators.sessions.start(principal.user)
    response = web.HTTPSeeOther(next_page)
    response.set_cookie(SESSION_COOKIE, secret, **cookie_options(request))  # type: ignore[arg-type]
    response.del_cookie(LOGIN_COOKIE, path="/ui/")
    raise response


async def logout(request: web.Request) -> web.Response:
    """POST only (with the CSRF token, checked by the guard): a link could be forged."""
    viewer(request)  # the guard resumed a session
    await authority(request).operators.sessions.end(request.cookies.get(SESSION_COOKIE, ""))
    response = web.HTTPSeeOther("/ui/login")
    response.del_cookie(SESSION_COOKIE, path="/ui/")
    raise response
