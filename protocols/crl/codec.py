"""CRL URLs <-> (issuer, scope, kind), and the HTTP form of a published CRL (sans-IO).

/crl/<ca>.crl (complete), /crl/<ca>/delta.crl, /crl/<ca>/<n>.crl (partition n),
/crl/<ca>/<n>-delta.crl: the names ca.revocation.pointers.CrlUrls puts in certificates.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from dataclasses import dataclass

from ca.revocation.crl import COMPLETE, DELTA
from ca.revocation.crl_store import CrlRecord
from ca.revocation.pointers import FULL, partition_scope
from protocols.crl.errors import CrlNotFound

CONTENT_TYPE = "application/pkix-crl"  # RFC 2585 §4.2
_FULL = re.compile(r"^/([A-Za-z0-9._-]+)\.crl$")
_SCOPED = re.compile(r"^/([A-Za-z0-9._-]+)/(delta|[0-9]{1,5}|[0-9]{1,5}-delta)\.crl$")


@dataclass(frozen=True)
class CrlRequest:
    issuer: str
    scope: str
    kind: str


def decode_path(path: str) -> CrlRequest:
    match = _FULL.match(path)
    if match:
        return CrlRequest(match.group(1), FULL, COMPLETE)
    match = _SCOPED.match(path)
    if not match:
        raise CrlNotFound(f"no CRL at {path[:80]!r}")
    issuer, name = match.group(1), match.group(2)
    if name == "delta":
        return CrlRequest(issuer, FULL, DELTA)
    index, _, delta = name.partition("-")
    return CrlRequest(issuer, partition_scope(int(index)), DELTA if delta else COMPLETE)


def _http_date(at: dt.datetime) -> str:
    return email.utils.format_datetime(at.astimezone(dt.UTC), usegmt=True)


def encode_crl(record: CrlRecord, *, now: dt.datetime, max_age: dt.timedelta) -> tuple[dict[str, str], bytes]:
    """DER body and caching headers: cached no longer than max_age and never past nextUpdate."""
    assert record.der is not None
    age = int(max(0, min(max_age.total_seconds(), (record.next_update - now).total_seconds())))
    headers = {
        "Content-Type": CONTENT_TYPE,
        "Cache-Control": f"max-age={age}, public, no-transform, must-revalidate",
        "Last-Modified": _http_date(record.this_update),
        "Expires": _http_date(record.next_update),
        "ETag": f'"{record.sha256}"',
    }
    return headers, record.der
