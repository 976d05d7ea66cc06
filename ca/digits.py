"""Numbers written by someone else: ASCII digits only, and not too many of them.

``str.isdigit()`` and ``int()`` accept far more than ``0-9``: ``"²".isdigit()`` is true and
``int("²")`` then raises, ``int("١٢")`` is 12, ``int(" +1_2 ")`` is 12, and a 40-digit id
overflows every 64-bit column it is compared with. Each of those once reached a handler as
an id (``/acme/order/²``, ``/api/v1/requests/²``, a ``kid`` ending in ``²``) and became a
500. So every place that turns outside text into a number (path ids, account URLs, a
revocation reason code, a validation server's status line, a port in the config) goes
through these two functions, and one rule holds everywhere: a number is 1 to ``max_digits``
ASCII digits, nothing else, or it is not a number.
"""

from __future__ import annotations

import string

# Every number of 18 decimal digits fits a signed 64-bit column (BIGINT, SQLite INTEGER).
MAX_ID_DIGITS = 18

_HEX_DIGITS = frozenset(string.hexdigits)


def parse_decimal(text: str, max_digits: int = MAX_ID_DIGITS) -> int | None:
    """The value of ``text`` if it is 1 to ``max_digits`` ASCII decimal digits, else None."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def parse_hex(text: str, max_digits: int) -> int | None:
    """The value of ``text`` if it is 1 to ``max_digits`` ASCII hexadecimal digits (no ``0x``,
    no sign, no separators, no spaces), else None."""
    if not 0 < len(text) <= max_digits or not _HEX_DIGITS.issuperset(text):
        return None
    return int(text, 16)
