"""GET /openapi.json: the API's own description, served without authentication (a client
generator needs it before it has a token; it holds no secret)."""

from __future__ import annotations

import functools
from typing import Any

from server.manage.endpoint import Call, Endpoint, Reply


@functools.cache
def _document() -> dict[str, Any]:
    from server.manage.api import ENDPOINTS  # the tuple this endpoint is part of
    from server.manage.openapi import document

    return document(ENDPOINTS)


async def openapi(call: Call) -> Reply:
    return Reply(body=_document())


ENDPOINTS = (
    Endpoint(
        "GET",
        "/openapi.json",
        "getOpenApi",
        "This API's OpenAPI 3.1 description",
        None,
        openapi,
        {200: {"type": "object", "required": ["openapi", "paths"]}},
        tag="meta",
    ),
)
