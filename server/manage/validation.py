"""Checking a decoded body or query against its JSON Schema (draft 2020-12, the dialect of
OpenAPI 3.1), with a refusal that names the member and the rule, never the value (OPS-12).

The schemas are the endpoint declarations' own dictionaries, so the OpenAPI document shows
exactly what is enforced. Bodies are decoded first by the one bounded decoder
(protocols.json_body: size, nesting, duplicate members, unstorable text).
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

_VALIDATORS: dict[int, tuple[dict[str, Any], Draft202012Validator]] = {}


class SchemaViolation(ValueError):
    """The value breaks its schema; the message names where and which rule."""


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    """The validator of ``schema``, checked once (a broken schema fails when the router is built)."""
    known = _VALIDATORS.get(id(schema))
    if known is None or known[0] is not schema:
        Draft202012Validator.check_schema(schema)
        known = (schema, Draft202012Validator(schema))
        _VALIDATORS[id(schema)] = known
    return known[1]


def validate(value: Any, schema: dict[str, Any], where: str = "body") -> Any:
    """``value`` if it satisfies ``schema``, else SchemaViolation."""
    error = best_match(validator(schema).iter_errors(value))
    if error is not None:
        raise SchemaViolation(_describe(error, where))
    return value


def _describe(error: ValidationError, root: str) -> str:
    """Where and which rule, in a few words. jsonschema's own message quotes the offending
    value, which may be 64 KB long or hold anything: it is not echoed."""
    where = root + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
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
        return f"{where} must not be empty" if expected == 1 else f"{where} must be at least {expected} characters"
    if rule in ("minimum", "maximum"):
        return f"{where} must be between {schema.get('minimum', '-inf')} and {schema.get('maximum', 'inf')}"
    if rule in ("maxItems", "minItems"):
        return f"{where} must hold {schema.get('minItems', 0)} to {schema.get('maxItems', 'any number of')} items"
    if rule == "pattern":
        return f"{where} must match {expected}"
    if rule == "enum":
        return f"{where} must be one of {', '.join(map(str, expected))}"
    if rule in ("oneOf", "anyOf"):
        kinds = [_alternative(s) for s in expected if isinstance(s, dict)]
        return f"{where} must be one of: {'; '.join(kinds)}"
    if rule == "minProperties":
        return f"{where} must name at least {expected} member"
    return f"{where} breaks the rule {rule!r}"


def _alternative(schema: dict[str, Any]) -> str:
    """One branch of a oneOf, in words: its type, or the members it needs."""
    if "required" in schema:
        return "with " + " and ".join(schema["required"])
    return str(schema.get("type"))
