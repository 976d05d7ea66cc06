"""In-process cache of signed OCSP answers, kept honest by the revocation feed.

Entries expire well before their nextUpdate and after a TTL; a revocation seen on
the feed evicts the certificate's entries and, for a while, refuses to cache a
'good' answer for it again, so a stale row read concurrently can not sneak back in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ca.revocation.model import HASH_OIDS, CertStatus, OcspAnswer

CacheKey = tuple[str, int, str]  # issuer name, serial, CertID hash
REVOKED_MEMORY = 120.0  # seconds a revocation is remembered by the cache


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    answer: OcspAnswer
    status: CertStatus
    stale_at: float  # monotonic seconds


class AnswerCache:
    def __init__(self, capacity: int, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.capacity = capacity
        self._entries: dict[CacheKey, CachedAnswer] = {}
        self._revoked: dict[tuple[str, int], float] = {}
        self._now = monotonic

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> CachedAnswer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.stale_at <= self._now():
            self._entries.pop(key, None)
            return None
        return entry

    def put(self, key: CacheKey, entry: CachedAnswer) -> bool:
        """Cache an answer unless it would contradict a revocation seen recently."""
        if entry.status.kind != "revoked" and self.recently_revoked(key[0], key[1]):
            return False
        if key not in self._entries and len(self._entries) >= self.capacity:
            self._entries.pop(next(iter(self._entries)))  # oldest inserted first
        self._entries[key] = entry
        return True

    def forget(self, issuer: str, serial: int) -> None:
        for hash_alg in HASH_OIDS:
            self._entries.pop((issuer, serial, hash_alg), None)

    def mark_revoked(self, issuer: str, serial: int) -> None:
        """Drop non-revoked answers now and refuse them for REVOKED_MEMORY seconds."""
        for hash_alg in HASH_OIDS:
            entry = self._entries.get((issuer, serial, hash_alg))
            if entry is not None and entry.status.kind != "revoked":
                del self._entries[(issuer, serial, hash_alg)]
        now = self._now()
        self._revoked[(issuer, serial)] = now + REVOKED_MEMORY
        if len(self._revoked) > 10_000:
            self._revoked = {k: v for k, v in self._revoked.items() if v > now}

    def recently_revoked(self, issuer: str, serial: int) -> bool:
        until = self._revoked.get((issuer, serial))
        return until is not None and until > self._now()

    def clear(self) -> None:
        self._entries.clear()
