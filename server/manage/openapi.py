"""The OpenAPI 3.1 document of the management API, made from the endpoint declarations.

Its schemas are the very dictionaries the router validates with (OpenAPI 3.1 uses JSON Schema
draft 2020-12 as is), so the document cannot promise what the server does not enforce. Served
without authentication at GET /api/v1/openapi.json.
"""

from __future__ import annotations

from typing import Any

from server.manage.endpoint import Endpoint
from server.manage.problems import MEDIA_TYPE, PROBLEM_SCHEMA, TYPES

VERSION = "1"


def document(endpoints: tuple[Endpoint, ...]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tetra CA management API",
            "version": VERSION,
            "description": "Every error is an RFC 9457 problem document (application/problem+json).",
        },
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Problem": PROBLEM_SCHEMA},
        },
    }


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in endpoint.path_params
    ]
    parameters += [
        {"name": q.name, "in": "query", "required": q.required, "description": q.description, "schema": q.schema}
        for q in endpoint.query
    ]
    responses: dict[str, Any] = {}
    for status, schema in endpoint.responses.items():
        media_types = endpoint.media_types.get(status, ("application/json",))
        content = {media: {"schema": schema} for media in media_types} if status != 204 else None
        responses[str(status)] = {"description": _reason(status), **({"content": content} if content else {})}
    responses["default"] = {
        "description": "a problem: " + ", ".join(sorted({f"{status} {code}" for code, (status, _) in TYPES.items()})),
        "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "parameters": parameters,
        "responses": responses,
    }
    if endpoint.tag:
        operation["tags"] = [endpoint.tag]
    operation["security"] = [{"bearer": []}] if endpoint.authenticated else []
    if endpoint.permission is not None:
        operation["x-permission"] = endpoint.permission.value
    if endpoint.body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": endpoint.body}}}
    return operation


def _reason(status: int) -> str:
    return {200: "OK", 201: "Created", 202: "Accepted: held for approval", 204: "No content"}.get(status, str(status))
