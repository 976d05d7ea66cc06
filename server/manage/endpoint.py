"""`Endpoint`: one API operation, declared once as data. The router serves it, the permission
check reads its `permission`, the OpenAPI document describes it and docs/api.md's role table
lists it, all from the same declaration (OPS-01).

A handler sees only what the declaration admitted: a principal holding the permission, a body
valid under `body`, query values valid under their schemas. It answers with a `Reply`; refusals
are `Problem`s (server/manage/problems.py), never aiohttp responses, so handlers stay free of
the web framework and the actions below them (server/manage/actions/) free of both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ca.digits import MAX_ID_DIGITS, parse_decimal
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.service import CertificateAuthority
from server.config import ServerConfig
from server.manage.problems import Problem

JsonSchema = dict[str, Any]


@dataclass(frozen=True)
class QueryParam:
    """One query parameter: its name, its JSON Schema (type "string", "integer" or "boolean";
    the router converts the text before validating) and a line for the document."""

    name: str
    schema: JsonSchema
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Call:
    """One validated call, as a handler receives it."""

    principal: Principal | None  # None only for an endpoint without a permission (the OpenAPI document)
    ca: CertificateAuthority
    body: Any  # valid under the endpoint's body schema; None when it declares none
    query: Mapping[str, Any]  # the declared parameters given, converted and valid
    path: Mapping[str, str]  # the path's {name} segments, as text
    client: str  # the client's address (for audit details and logs)
    config: ServerConfig | None = None  # the server's settings ([discovery], protocol sections, profiles_dir)

    @property
    def acting(self) -> Principal:
        """The principal of an endpoint that has a permission (the router authenticated it)."""
        assert self.principal is not None, "an endpoint with a permission always has a principal"
        return self.principal

    @property
    def server(self) -> ServerConfig:
        """The served configuration (the router always passes it)."""
        assert self.config is not None, "the router passes the server's configuration"
        return self.config


@dataclass(frozen=True)
class Reply:
    """What a handler answers: a JSON value, or `data` bytes of `media_type`."""

    status: int = 200
    body: Any = None
    data: bytes | None = None
    media_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Endpoint:
    method: str  # GET, POST, PATCH, DELETE
    path: str  # below /api/v1, with {name} segments: "/certificates/{id}"
    operation_id: str  # unique; the OpenAPI operationId
    summary: str
    permission: Permission | None  # None: served without authentication (only the document itself)
    handler: Handler
    responses: Mapping[int, JsonSchema]  # success statuses and their bodies' schemas
    body: JsonSchema | None = None  # the request body's schema; None: the endpoint takes no body
    query: tuple[QueryParam, ...] = ()
    media_types: Mapping[int, tuple[str, ...]] = field(default_factory=dict)  # a success that is not JSON (downloads)
    tag: str = ""  # the resource, grouping operations in the document
    # With permission None: every signed-in user may call it (its own account: /me, /tokens);
    # False with permission None: served without authentication (the OpenAPI document).
    any_user: bool = False

    @property
    def authenticated(self) -> bool:
        return self.permission is not None or self.any_user

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(part[1:-1] for part in self.path.split("/") if part.startswith("{") and part.endswith("}"))


def path_id(call: Call, name: str = "id") -> int:
    """A path's numeric id segment; anything but 1 to 18 digits is a 400 problem naming it."""
    value = parse_decimal(call.path[name])
    if value is None:
        raise Problem("malformed", f"{name} must be 1 to {MAX_ID_DIGITS} digits 0-9")
    return value
