"""EST-03: the wrong-password brake per client address, on a clock the test moves."""

from __future__ import annotations

import pytest

from protocols.est.auth import check_not_braked
from protocols.est.errors import EstError
from protocols.lockout import FailedAttempts


def test_brake_after_the_limit_and_release_after_the_window() -> None:
    now = [1000.0]
    guard = FailedAttempts(3, 60, lambda: now[0])
    for _ in range(3):
        check_not_braked(guard, "192.0.2.1")
        guard.failed("192.0.2.1")
        now[0] += 1
    with pytest.raises(EstError) as err:
        check_not_braked(guard, "192.0.2.1")
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "57"
    check_not_braked(guard, "192.0.2.2")  # another address is not braked
    now[0] += 57
    check_not_braked(guard, "192.0.2.1")  # the oldest failure left the window


def test_success_forgets_the_failures() -> None:
    guard = FailedAttempts(2, 60, lambda: 0.0)
    guard.failed("a")
    guard.succeeded("a")
    guard.failed("a")
    check_not_braked(guard, "a")
