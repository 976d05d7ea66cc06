"""Strict base64url without padding (RFC 8555 §6.1, RFC 7515 §2): anything else is malformed."""

from __future__ import annotations

import base64
import binascii
import re

from protocols.acme.errors import malformed

_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")


class Base64Error(ValueError):
    pass


def b64d(text: str) -> bytes:
    """Decode; refuses padding, foreign characters and non-canonical trailing bits."""
    if not isinstance(text, str) or not _ALPHABET.fullmatch(text) or len(text) % 4 == 1:
        raise Base64Error("not base64url without padding")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise Base64Error("not base64url without padding") from None
    if b64e(data) != text:
        raise Base64Error("non-canonical base64url")
    return data


def b64_member(value: object, what: str) -> bytes:
    """A JSON member that must hold base64url (a JWS part, a JWK coordinate), decoded; anything
    else is a malformed problem that names it (RFC 8555 §6.2, ACME-06)."""
    if not isinstance(value, str):
        raise malformed(f"{what} must be a base64url string")
    try:
        return b64d(value)
    except Base64Error:
        raise malformed(f"{what} is not base64url without padding") from None


def b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
