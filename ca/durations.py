"""Durations as operators write them: "250ms", "30s", "15m", "4h", "7d", or plain seconds.

One reader for every place a person types a duration (the [ocsp] and [crl] sections, `tetra scep
challenge --ttl`), so "1h" means the same everywhere and is refused the same way.
"""

from __future__ import annotations

import datetime as dt
import re

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(text: object) -> dt.timedelta:
    """The duration ``text`` names; ValueError (its message fit for the operator) otherwise."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return dt.timedelta(seconds=text)
    if not isinstance(text, str):
        raise ValueError(f"expected a duration, got {text!r}")
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30s, 15m, 4h or 7d")
    return dt.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
