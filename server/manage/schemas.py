"""JSON Schema pieces several endpoints share (draft 2020-12, as OpenAPI 3.1 takes them)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from ca.enrollment import INVENTORY_FIELD_MAX, InventoryFields

NAME_MAX = 64  # profile and issuer names: the width of their columns
CSR_MAX = 32 * 1024  # characters of PEM; an RSA-8192 request is under 8,000
SERIAL_MAX = 40 + 19  # 20 octets in hex, with a colon between each pair

NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": NAME_MAX}
CSR: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": CSR_MAX, "description": "PKCS#10 CSR in PEM"}
INVENTORY_TEXT: dict[str, Any] = {"type": ["string", "null"], "maxLength": INVENTORY_FIELD_MAX}
INVENTORY: dict[str, Any] = {
    "type": "object",
    "description": "Who owns the certificate and where it is deployed.",
    "additionalProperties": False,
    "properties": {field.name: INVENTORY_TEXT for field in fields(InventoryFields)},
}
REVOCATION_REASON: dict[str, Any] = {
    "description": "RFC 5280 reason: a name (keyCompromise) or a code (1)",
    "oneOf": [
        {"type": "string", "minLength": 1, "maxLength": 32},
        {"type": "integer", "minimum": 0, "maximum": 10},
    ],
}
PEM_TEXT: dict[str, Any] = {"type": "string"}
