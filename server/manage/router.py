"""The aiohttp side of the management API: one route per declared `Endpoint`, and the steps
every call takes before its handler runs, in this order:

1. transport: a bearer token over plain HTTP only from loopback (server/manage/auth.py);
2. who: the bearer token -> a `Principal`, or 401; the endpoint's permission, or 403;
3. what: the body decoded by the one bounded JSON decoder and valid under the endpoint's schema,
   each query parameter declared and valid under its own, or a 400 problem naming it (OPS-12).

Every refusal, aiohttp's own included (404, 405, 413 under /api/v1), is a problem document
(server/manage/problems.py). Which listener may reach these paths is decided in server/app.py
(`management_gate`), before routing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from ca.activity import request_scope
from ca.digits import parse_decimal
from ca.errors import CAError
from ca.service import CertificateAuthority
from protocols import json_body
from server.failures import FAILURES, INTERNAL_ERROR
from server.http import ClientGone, read_bounded
from server.manage.actions.access import require
from server.manage.auth import authenticate, check_transport
from server.manage.endpoint import Call, Endpoint, QueryParam, Reply
from server.manage.problems import MEDIA_TYPE, Problem
from server.manage.settings import ManageSettings
from server.manage.validation import SchemaViolation, validate, validator
from server.metrics import Metrics

log = logging.getLogger("tetra.manage")

PREFIX = "/api/v1"
# Every answer of the API: never cached by a proxy or a browser, never sniffed into HTML.
_SAFE_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def manage_app(
    endpoints: tuple[Endpoint, ...],
    settings: ManageSettings,
    ca_key: web.AppKey[CertificateAuthority],
    metrics_key: web.AppKey[Metrics],
) -> web.Application:
    """The sub-application serving ``endpoints`` under /api/v1."""
    sub = web.Application(client_max_size=settings.max_body, middlewares=[_problems_for_aiohttp])
    for endpoint in endpoints:
        for schema in (endpoint.body, *(q.schema for q in endpoint.query)):
            if schema is not None:
                validator(schema)  # a broken schema fails here, at start-up, not on a request
        sub.router.add_route(endpoint.method, endpoint.path, _serve(endpoint, settings, ca_key, metrics_key))
    return sub


def _serve(
    endpoint: Endpoint,
    settings: ManageSettings,
    ca_key: web.AppKey[CertificateAuthority],
    metrics_key: web.AppKey[Metrics],
) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        ca = request.config_dict[ca_key]
        remote = request.remote or ""
        with request_scope(protocol="api"):  # events carry the protocol (ca/activity.py)
            try:
                principal = None
                if endpoint.permission is not None:
                    check_transport(request.scheme, remote, settings.allow_plain_http)
                    principal = await authenticate(ca, request.headers.get("Authorization", ""), remote)
                    require(principal, endpoint.permission)
                call = Call(
                    principal=principal,
                    ca=ca,
                    body=await _body(request, endpoint, settings.max_body),
                    query=_query(request, endpoint.query),
                    path=dict(request.match_info),
                    client=remote,
                )
                response = _render(await endpoint.handler(call))
            except Problem as problem:
                response = render_problem(problem)
            except CAError as exc:
                response = render_problem(Problem.from_ca_error(exc))
        request.config_dict[metrics_key].requests.labels("api", request.method, str(response.status)).inc()
        return response

    return handle


async def _body(request: web.Request, endpoint: Endpoint, limit: int) -> Any:
    if endpoint.body is None:
        return None
    data = await read_bounded(request, limit)
    try:
        return validate(json_body.decode(data), endpoint.body)
    except json_body.JsonRefused as exc:
        raise Problem("malformed", f"the body {exc}") from None
    except SchemaViolation as exc:
        raise Problem("invalid-body", str(exc)) from None


def _query(request: web.Request, declared: tuple[QueryParam, ...]) -> Mapping[str, Any]:
    """Each declared parameter given, converted from text and valid under its schema; an
    undeclared or repeated one is refused (a misspelt filter must not silently list everything)."""
    by_name = {param.name: param for param in declared}
    values: dict[str, Any] = {}
    for name in request.query:
        if name not in by_name:
            known = ", ".join(by_name) or "none"
            raise Problem("invalid-query", f"unknown query parameter {name[:40]!r} (known: {known})")
        texts = request.query.getall(name)
        if len(texts) > 1:
            raise Problem("invalid-query", f"query parameter {name} is given more than once")
        param = by_name[name]
        try:
            values[name] = validate(_convert(texts[0], param), param.schema, f"query parameter {name}")
        except SchemaViolation as exc:
            raise Problem("invalid-query", str(exc)) from None
    for param in declared:
        if param.required and param.name not in values:
            raise Problem("invalid-query", f"query parameter {param.name} is required")
    return values


def _convert(text: str, param: QueryParam) -> Any:
    kind = param.schema.get("type")
    if kind == "integer":
        value = parse_decimal(text)
        if value is None:
            raise Problem("invalid-query", f"query parameter {param.name} must be a whole number")
        return value
    if kind == "boolean":
        if text not in ("true", "false"):
            raise Problem("invalid-query", f"query parameter {param.name} must be true or false")
        return text == "true"
    return text


def _render(reply: Reply) -> web.Response:
    headers = {**_SAFE_HEADERS, **reply.headers, "Content-Type": reply.media_type}
    if reply.data is not None:
        return web.Response(status=reply.status, body=reply.data, headers=headers)
    body = b"" if reply.status == 204 else json.dumps(reply.body).encode()
    return web.Response(status=reply.status, body=body, headers=headers)


def render_problem(problem: Problem) -> web.Response:
    headers = {**_SAFE_HEADERS, **problem.headers, "Content-Type": MEDIA_TYPE}
    return web.Response(status=problem.status, body=problem.body(), headers=headers)


@web.middleware
async def _problems_for_aiohttp(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What aiohttp refuses before a handler runs, and what a handler did not foresee, as problems."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = render_problem(Problem.from_http_status(exc.status, exc.reason))
        if "Allow" in exc.headers:  # 405 says which methods would do
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except ClientGone:
        raise
    except Exception as exc:  # a bug this request reached: logged as server/failures.py logs (DOS-15)
        request.config_dict[FAILURES].record("api", f"{request.method} {request.path[:100]}", exc)
        return render_problem(Problem("internal", INTERNAL_ERROR))
