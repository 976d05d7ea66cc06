"""The list convention of every collection: `?limit=1..1000` (default 100) and `?cursor=`,
answered as `{"items": [...], "next": cursor or null}`.

A cursor is opaque to clients: it encodes the id of the last item of the page (lists are in
id order, oldest first: keyset paging), so no item is skipped or repeated while new ones arrive. A cursor that does
not decode is a 400 problem, not an empty page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ca.digits import parse_decimal
from server.manage.endpoint import JsonSchema, QueryParam
from server.manage.problems import Problem

T = TypeVar("T")

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_PREFIX = "after:"

LIMIT = QueryParam(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    "items per page",
)
CURSOR = QueryParam(
    "cursor",
    {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$"},
    "the previous page's `next`",
)
PAGING = (LIMIT, CURSOR)


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after_id: int | None  # only items with a larger id: those after the previous page


def page_request(query: Any) -> PageRequest:
    limit = int(query.get("limit", DEFAULT_LIMIT))
    cursor = query.get("cursor")
    return PageRequest(limit, _decode(cursor) if cursor is not None else None)


def fetch_size(request: PageRequest) -> int:
    """How many to fetch: one more than a page, so a cut page is known."""
    return request.limit + 1


def page(items: Sequence[T], request: PageRequest, id_of: Callable[[T], int], render: Callable[[T], Any]) -> Any:
    """The page's body from up to `limit + 1` items fetched: the extra one only says there is more."""
    shown = list(items[: request.limit])
    more = len(items) > request.limit
    return {"items": [render(item) for item in shown], "next": encode(id_of(shown[-1])) if more and shown else None}


def encode(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).decode().rstrip("=")


def _decode(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    value = parse_decimal(text.removeprefix(_PREFIX)) if text.startswith(_PREFIX) else None
    if value is None:
        raise Problem("invalid-query", "query parameter cursor is not a cursor this API gave")
    return value


def page_schema(item: JsonSchema) -> JsonSchema:
    return {
        "type": "object",
        "required": ["items", "next"],
        "properties": {"items": {"type": "array", "items": item}, "next": {"type": ["string", "null"]}},
    }
