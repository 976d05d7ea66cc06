"""Password checks for protocol credentials (EST-03): right and wrong passwords, an unknown
user checked against a decoy, and the memory of recent successes admitting nothing the
stored hash would refuse."""

from __future__ import annotations

import threading

import pytest

from ca import passwords


async def test_right_and_wrong_password() -> None:
    stored = passwords.hash_password("correct horse")
    assert await passwords.verify("correct horse", stored)
    assert not await passwords.verify("correct horsE", stored)
    assert not await passwords.verify("correct horse", None)  # no such user


async def test_a_remembered_success_does_not_admit_another_hash_or_password() -> None:
    old = passwords.hash_password("s3cret")
    assert await passwords.verify("s3cret", old)
    changed = passwords.hash_password("n3w")  # the operator replaced the user's password
    assert not await passwords.verify("s3cret", changed)
    assert not await passwords.verify("s3cret-", old)
    assert await passwords.verify("n3w", changed)


async def test_the_hash_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ~50 ms scrypt on the event loop would stall every other request of the process."""
    threads: list[str] = []
    real = passwords.check_password

    def spy(password: str, stored: str) -> bool:
        threads.append(threading.current_thread().name)
        return real(password, stored)

    monkeypatch.setattr(passwords, "check_password", spy)
    await passwords.verify("first time", passwords.hash_password("first time"))
    await passwords.verify("x", None)
    assert threads and threading.main_thread().name not in threads
