"""Slow password hashes for protocol credentials (EST Basic users), checked off the event loop.

scrypt (n = 2^14, r = 8) costs tens of milliseconds of CPU by design, so that a stolen table
is slow to attack. Checked on the event loop, each check would stall every other request the
process is serving; `hashlib.scrypt` releases the GIL, so checks run in worker threads, in
parallel, instead.

A device that re-authenticates with the same password would pay that cost on every request.
A successful check is therefore remembered for `RECENT_SECONDS` under a keyed digest of the
stored hash and the password (never the password itself, and the key lives only in this
process). A changed password has another stored hash and a removed or revoked user has no
row to compare, so the memory never admits what the store would refuse. Failures are never
remembered: guessing stays as slow as the hash.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import secrets
import time

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
RECENT_SECONDS = 60.0
_RECENT_LIMIT = 10_000
_process_key = secrets.token_bytes(32)
_recent: dict[bytes, float] = {}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$" + base64.b64encode(salt).decode() + "$" + base64.b64encode(digest).decode()


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_b64, digest_b64 = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    digest = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt_b64), dklen=32, **_SCRYPT)
    return hmac.compare_digest(digest, base64.b64decode(digest_b64))


@functools.cache
def _decoy_hash() -> str:
    """A hash to check an unknown user's password against, so that a missing user costs the
    same time as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


async def verify(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored`` (None: no such user, checked against a decoy)."""
    if stored is None:
        await asyncio.to_thread(check_password, password, _decoy_hash())
        return False
    memo = hmac.new(_process_key, stored.encode() + b"\0" + password.encode(), hashlib.sha256).digest()
    now = time.monotonic()
    seen = _recent.get(memo)
    if seen is not None and now - seen < RECENT_SECONDS:
        return True
    if not await asyncio.to_thread(check_password, password, stored):
        return False
    if len(_recent) >= _RECENT_LIMIT:
        _recent.clear()
    _recent[memo] = now
    return True
