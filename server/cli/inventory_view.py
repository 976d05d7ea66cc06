"""How inventory records look on a terminal, in JSON and in CSV (one place, so `inventory list`,
`search`, `export` and `show` agree on every field's name and format)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Sequence
from typing import Any

from ca.inventory.model import InventoryRecord, Sighting

WHEN = "%Y-%m-%d %H:%M"

# The flat fields every format carries, in this order (CSV columns, JSON keys).
FIELDS = (
    "id",
    "status",
    "source",
    "subject",
    "sans",
    "issuer",
    "issuer_dn",
    "serial",
    "not_before",
    "not_after",
    "key",
    "signature_algorithm",
    "fingerprint",
    "owner",
    "team",
    "application",
    "tags",
    "renewal_method",
    "replaces",
    "profile",
    "protocol",
    "location",
    "first_seen",
    "last_seen",
    "revoked_at",
    "revocation_reason",
)


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def as_dict(r: InventoryRecord, now: dt.datetime) -> dict[str, Any]:
    return {
        "id": r.id,
        "status": r.status(now).value,
        "source": r.source.value,
        "subject": r.subject,
        "sans": list(r.sans),
        "issuer": r.issuer_name or r.issuer_dn,
        "issuer_dn": r.issuer_dn,
        "serial": r.serial,
        "not_before": r.not_before.isoformat(),
        "not_after": r.not_after.isoformat(),
        "key": f"{r.key_algorithm}-{r.key_size}" if r.key_algorithm in ("rsa", "dsa", "ec") else r.key_algorithm,
        "signature_algorithm": r.signature_algorithm,
        "fingerprint": r.fingerprint,
        "owner": r.owner,
        "team": r.team,
        "application": r.application,
        "tags": list(r.tags),
        "renewal_method": r.renewal_method,
        "replaces": r.replaces_id,
        "profile": r.profile,
        "protocol": r.protocol,
        "location": r.declared_location,
        "first_seen": _time(r.first_seen_at),
        "last_seen": _time(r.last_seen_at),
        "revoked_at": _time(r.revoked_at),
        "revocation_reason": r.revocation_reason,
    }


def csv_cells(r: InventoryRecord, now: dt.datetime, *, with_der: bool) -> list[str]:
    """One CSV row: lists joined with ';', None as empty, and the certificate as base64 DER (a
    PEM's leading dashes would look like a formula to a spreadsheet)."""
    values = as_dict(r, now)
    cells = []
    for name in FIELDS:
        value = values[name]
        if isinstance(value, list):
            value = ";".join(str(v) for v in value)
        cells.append("" if value is None else str(value))
    if with_der:
        cells.append(base64.b64encode(r.der).decode())
    return cells


def table_lines(records: Sequence[InventoryRecord], now: dt.datetime) -> list[str]:
    rows = [
        [
            str(r.id),
            r.serial,
            r.status(now).value,
            f"{r.not_after:{WHEN}}",
            r.source.value,
            r.owner or "-",
            ",".join(s.partition(":")[2] for s in r.sans) or r.subject,
        ]
        for r in records
    ]
    return columns(["id", "serial", "status", "not after", "source", "owner", "names"], rows)


def columns(headers: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a table whose columns are as wide as their longest cell (a 40-digit serial, a long
    profile name), the first right-aligned (ids) and the last left as long as it is (names)."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        first = cells[0].rjust(widths[0])
        middle = [cell.ljust(width) for cell, width in zip(cells[1:-1], widths[1:-1], strict=True)]
        return " ".join([first, *middle, cells[-1]])

    return [line(headers)] + [line(row) for row in rows]


def detail_lines(r: InventoryRecord, seen: Sequence[Sighting], now: dt.datetime) -> list[str]:
    values = as_dict(r, now)
    out = [f"{name + ':':<20} {_plain(values[name])}" for name in FIELDS if name not in ("sans", "tags")]
    out.insert(4, f"{'names:':<20} {', '.join(r.sans) or '-'}")
    out.append(f"{'tags:':<20} {', '.join(r.tags) or '-'}")
    out.append(f"{'seen at:':<20} {'(nowhere yet)' if not seen else ''}".rstrip())
    for s in seen:
        out.append(f"  {s.kind:<8} {s.location}  first {s.first_seen:{WHEN}}  last {s.last_seen:{WHEN}}")
    return out


def _plain(value: object) -> str:
    return "-" if value is None or value == "" else str(value)
