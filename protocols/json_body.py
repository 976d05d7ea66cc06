"""The one JSON decoder for what clients send (DOS-13): every JSON entry point of every protocol
(ACME's JWS and its payloads, the operator API's bodies) decodes through `decode`, so one set
of limits holds everywhere and no input reaches a handler that the limits did not pass.

Python's ``json.loads`` alone accepts too much for a server: nesting deep enough to raise
RecursionError (a 500 once), duplicate members (which one counts?), ``NaN`` and ``Infinity``,
UTF-16 and UTF-32 bodies, lone surrogates and NULs that no database column can store, and
strings as long as the body. `decode` refuses all of these with `JsonRefused`, whose text
each protocol words in its own error format (ACME: ``malformed``; the API: 400).
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_BYTES = 128 * 1024  # no protocol takes a larger JSON body (each also has its own max_body)
MAX_DEPTH = 16  # objects and arrays inside each other; ACME needs 4, the API 2
MAX_STRING = 64 * 1024  # characters in one string or member name (a JWS payload is the longest)

_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")  # NUL and lone surrogates: valid JSON escapes, unstorable text


class JsonRefused(ValueError):
    """Not JSON we take; the message completes "the body ..." (e.g. "is not JSON")."""


def decode(data: bytes) -> Any:
    """The JSON value in ``data`` (UTF-8), within the limits above, or JsonRefused."""
    if len(data) > MAX_BYTES:
        raise JsonRefused(f"is longer than {MAX_BYTES} bytes")
    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError:
        raise JsonRefused(f"is nested more than {MAX_DEPTH} levels deep") from None
    except JsonRefused:
        raise
    except ValueError:  # JSONDecodeError, UnicodeDecodeError, an integer of over 4,300 digits
        raise JsonRefused("is not JSON") from None
    _check(value)
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonRefused(f"has a duplicate member {key[:100]!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise JsonRefused(f"holds {name}, which is not JSON")


def _check(value: Any) -> None:
    """Depth, string lengths and text, walked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise JsonRefused(f"is nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                for key, member in item.items():
                    _check_text(key)
                    stack.append((member, depth + 1))
            else:
                stack.extend((member, depth + 1) for member in item)


def _check_text(text: str) -> None:
    if len(text) > MAX_STRING:
        raise JsonRefused(f"holds a string longer than {MAX_STRING} characters")
    if _NOT_TEXT.search(text):
        raise JsonRefused("holds a NUL or a lone surrogate (\\u0000, \\ud800-\\udfff), which is not text")
