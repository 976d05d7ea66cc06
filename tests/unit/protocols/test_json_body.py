"""The one bounded JSON decoder (DOS-13), at its limits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from protocols.json_body import MAX_BYTES, MAX_DEPTH, MAX_STRING, JsonRefused, decode


def test_at_the_limits_is_accepted() -> None:
    """DOS-13: exactly MAX_DEPTH levels, a string of MAX_STRING characters, and non-ASCII text."""
    deep: Any = "x"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert decode(json.dumps(deep).encode()) == deep
    longest = "x" * (MAX_STRING - 1) + "é"
    assert decode(json.dumps({"s": longest}, ensure_ascii=False).encode())["s"] == longest
    assert decode(b'{"a": [1, 2.5, true, null, "\\u00e9"]}') == {"a": [1, 2.5, True, None, "é"]}


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (json.dumps([[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]).encode(), "nested"),
        (b"[" * (MAX_BYTES + 1), "longer than"),
        (b"[" * 60_000 + b"]" * 60_000, "nested"),
        (json.dumps({"s": "x" * (MAX_STRING + 1)}).encode(), "string longer"),
        (json.dumps({"x" * (MAX_STRING + 1): 1}).encode(), "string longer"),
        (b'{"a": 1, "a": 2}', "duplicate member 'a'"),
        (b'{"a": NaN}', "NaN"),
        (b"[Infinity]", "Infinity"),
        (b'["\\u0000"]', "NUL"),
        (b'["\\udc00"]', "surrogate"),
        (b'"\xff"', "not JSON"),
        (json.dumps({"a": 1}).encode("utf-16"), "not JSON"),
        (b"1" * 5000, "not JSON"),  # past Python's 4,300-digit integer limit
        (b"", "not JSON"),
        (b"{} {}", "not JSON"),
    ],
)
def test_refused(data: bytes, why: str) -> None:
    """DOS-13: each is refused with a reason, never RecursionError or a value past the limits."""
    assert len(data) <= MAX_BYTES or why == "longer than"
    with pytest.raises(JsonRefused, match=why):
        decode(data)
