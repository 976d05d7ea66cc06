"""Operator passwords (dashboard logins) as argon2id hashes, checked off the event loop.

argon2id is memory-hard: a stolen `users` table costs an attacker memory as well as time per
guess (OPS-10). The parameters are OWASP's (19 MiB, 2 passes, 1 lane): a check costs tens of
milliseconds, so it runs in a worker thread (`asyncio.to_thread`; argon2 releases the GIL) and
never stalls the server's other requests.

An unknown user name is checked against a dummy hash, so that a login for a name that does not
exist costs the same time as a wrong password and timing does not tell which names exist.

Protocol credentials (EST users) keep their own scrypt hashes in ca/passwords.py: they are
checked on every device request and remembered briefly, which a person's login must not be.
"""

from __future__ import annotations

import asyncio
import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ca.errors import BadRequest

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)  # argon2id by default
MIN_LENGTH = 12
MAX_LENGTH = 1024  # argon2 hashes any length; a megabyte "password" is an attack, not a secret


def check_strength(password: str) -> None:
    """Refuse a password too short to resist guessing, or absurdly long (BadRequest)."""
    if len(password) < MIN_LENGTH:
        raise BadRequest(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise BadRequest(f"a password has at most {MAX_LENGTH} characters")


async def hash_password(password: str) -> str:
    """The argon2id hash (PHC string: algorithm, parameters, salt, digest) to store."""
    check_strength(password)
    return await asyncio.to_thread(_HASHER.hash, password)


def _matches(password: str, stored: str) -> bool:
    try:
        return _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash nobody knows the password of, made once per process, for unknown users."""
    return _HASHER.hash(secrets.token_urlsafe(24))


async def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches ``stored``; None (no such user, or a user without a
    password) is checked against a dummy hash and is always False."""
    if len(password) > MAX_LENGTH:
        password = password[:MAX_LENGTH]  # still hashed, so a long guess costs what a short one does
        stored = None
    if stored is None:
        await asyncio.to_thread(_matches, password, _dummy_hash())
        return False
    return await asyncio.to_thread(_matches, password, stored)
