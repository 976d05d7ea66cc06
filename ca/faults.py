"""Test-only pause points inside issuance, so a fault harness can SIGKILL us at a known step.

Set TETRA_FAULT_POINT to one of F1 (serial drawn), F2 (intent stored), F3 (signed, not yet
stored), F4 (stored, not yet returned). The process prints a marker line and stops there.
Unset (always, outside the fault tests) this costs one dict lookup.
"""

from __future__ import annotations

import os
import sys
import time

POINTS = ("F1", "F2", "F3", "F4")


def checkpoint(name: str) -> None:
    if os.environ.get("TETRA_FAULT_POINT") == name:
        sys.stderr.write(f"TETRA-FAULT-POINT {name}\n")
        sys.stderr.flush()
        time.sleep(3600)  # blocks the whole process on purpose: the harness kills it here
