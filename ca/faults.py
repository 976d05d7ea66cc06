"""Test-only pause points inside issuance, so a fault harness can SIGKILL us at a known step.

Set TETRA_FAULT_POINT to one of F1 (serial drawn), F2 (intent stored), F3 (signed, not yet
stored), F4 (stored, not yet returned). The process prints a marker line and stops there.
It is read once, when the process starts (the harness sets it for the server it launches),
so the hot path pays one comparison.
"""

from __future__ import annotations

import os
import sys
import time

POINTS = ("F1", "F2", "F3", "F4")
_ARMED = os.environ.get("TETRA_FAULT_POINT")


def checkpoint(name: str) -> None:
    if _ARMED == name:
        sys.stderr.write(f"TETRA-FAULT-POINT {name}\n")
        sys.stderr.flush()
        time.sleep(3600)  # blocks the whole process on purpose: the harness kills it here
