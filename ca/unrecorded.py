"""Signed certificates whose result could not be stored: kept in memory for the recovery job.

After the key has signed (ST-01 F3) the result write can still fail: the database is away for
a moment, or refuses the row (ST-07). The intent row then stays 'signing' and the certificate
exists only in this process. Keeping it here lets ca/recovery.py store it once the database
takes writes again, instead of revoking a serial whose certificate is in hand. A crash loses
this memory; recovery then revokes the serial, which is the safe answer when nothing proves
what was signed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

log = logging.getLogger("tetra.recovery")

CAPACITY = 1000  # results; beyond this the oldest are dropped (and revoked by recovery instead)


class UnrecordedResults:
    """Certificate DER by intent row id, oldest first, bounded."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._ders: OrderedDict[int, bytes] = OrderedDict()

    def keep(self, row_id: int, der: bytes) -> None:
        self._ders[row_id] = der
        while len(self._ders) > self._capacity:
            dropped, _ = self._ders.popitem(last=False)
            log.error("over %d unstored results; certificate row %d will be revoked instead", self._capacity, dropped)

    def get(self, row_id: int) -> bytes | None:
        return self._ders.get(row_id)

    def forget(self, row_id: int) -> None:
        self._ders.pop(row_id, None)

    def items(self) -> list[tuple[int, bytes]]:
        return list(self._ders.items())

    def __len__(self) -> int:
        return len(self._ders)
