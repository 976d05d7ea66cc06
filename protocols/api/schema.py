"""The operator API's request bodies, declared as JSON Schema (draft 2020-12, the dialect of
OpenAPI 3.1) and checked here before a handler reads a field (OPS-12).

The schemas are data, not code, so the OpenAPI description the operator plane publishes is
made from these same dictionaries (`SCHEMAS`) and cannot drift from what is enforced. Every
field has a type and a length: an object where text belongs, a list as a revocation reason, a
100 KB owner or a dict as an issuer is refused with 400 here, before it can reach the core
or the store (it once reached the INSERT and failed a whole group commit).

Bodies are decoded first by the one bounded decoder (protocols.json_body: size, nesting,
duplicate members); `validate` then applies the body's schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from ca.enrollment import INVENTORY_FIELD_MAX, InventoryFields

NAME_MAX = 64  # profile and issuer names: the width of their columns
CSR_MAX = 32 * 1024  # characters of PEM; an RSA-8192 request is under 8,000
SERIAL_MAX = 40 + 19  # 20 octets in hex, with a colon between each pair

_INVENTORY_TEXT = {"type": ["string", "null"], "maxLength": INVENTORY_FIELD_MAX}

ENROLL_REQUEST: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "EnrollRequest",
    "description": "POST /api/v1/enroll: a PKCS#10 request to issue under a profile.",
    "type": "object",
    "required": ["csr", "profile"],
    "additionalProperties": False,
    "properties": {
        "csr": {"type": "string", "minLength": 1, "maxLength": CSR_MAX, "description": "PKCS#10 CSR in PEM"},
        "profile": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
        "inventory": {
            "type": "object",
            "description": "Who owns the certificate and where it is deployed.",
            "additionalProperties": False,
            "properties": {field.name: _INVENTORY_TEXT for field in fields(InventoryFields)},
        },
    },
}

REVOKE_REQUEST: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "RevokeRequest",
    "description": "POST /api/v1/revoke: revoke one certificate by serial.",
    "type": "object",
    "required": ["serial"],
    "additionalProperties": False,
    "properties": {
        "serial": {
            "type": "string",
            "minLength": 1,
            "maxLength": SERIAL_MAX,
            "pattern": "^[0-9A-Fa-f:]+$",
            "description": "hexadecimal, colons between octets allowed",
        },
        "issuer": {"type": "string", "minLength": 1, "maxLength": NAME_MAX, "description": "needed if ambiguous"},
        "reason": {
            "description": "RFC 5280 reason: a name (keyCompromise) or a code (1)",
            "oneOf": [
                {"type": "string", "minLength": 1, "maxLength": 32},
                {"type": "integer", "minimum": 0, "maximum": 10},
            ],
        },
    },
}

SCHEMAS: Mapping[str, dict[str, Any]] = {"EnrollRequest": ENROLL_REQUEST, "RevokeRequest": REVOKE_REQUEST}

for _schema in SCHEMAS.values():
    Draft202012Validator.check_schema(_schema)  # a broken schema fails at import, not per request
_VALIDATORS = {id(schema): Draft202012Validator(schema) for schema in SCHEMAS.values()}


class SchemaViolation(ValueError):
    """The body breaks its schema; the message names the member and the rule, never the value."""


def validate(body: Any, schema: dict[str, Any]) -> dict[str, Any]:
    """``body`` (already decoded) if it satisfies ``schema`` (one of `SCHEMAS`), else SchemaViolation."""
    error = best_match(_VALIDATORS[id(schema)].iter_errors(body))
    if error is not None:
        raise SchemaViolation(_describe(error))
    assert isinstance(body, dict)  # every request schema is an object
    return body


def _describe(error: ValidationError) -> str:
    """Where and which rule, in a few words. jsonschema's own message quotes the offending value,
    which may be 64 KB long or hold anything: it is not echoed."""
    where = "body" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    rule = error.validator
    expected: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if rule == "type":
        kinds = expected if isinstance(expected, list) else [expected]
        return f"{where} must be of type {' or '.join(map(str, kinds))}"
    if rule == "required":
        missing = [name for name in expected if name not in instance]
        return f"{where} lacks the member {', '.join(missing)}"
    if rule == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = next(name for name in instance if name not in allowed)
        return f"{where} has the member {extra[:40]!r}, not one of {', '.join(allowed)}"
    if rule == "maxLength":
        return f"{where} must be at most {expected} characters"
    if rule == "minLength":
        return f"{where} must not be empty"
    if rule in ("minimum", "maximum"):
        return f"{where} must be between {schema.get('minimum', '-inf')} and {schema.get('maximum', 'inf')}"
    if rule == "pattern":
        return f"{where} must match {expected}"
    if rule == "oneOf":
        kinds = [str(s.get("type")) for s in expected if isinstance(s, dict)]
        return f"{where} must be one of: {', '.join(kinds)}"
    return f"{where} breaks the rule {rule!r}"
