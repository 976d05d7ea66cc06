"""The name a server process holds the job lease under, stable across restarts (ST-18).

A lease names its holder; another holder waits for it to expire (ca/revocation/lease.py). A
holder named after the process id made a restarted server wait out its own dead lease (about
20 s) before it published CRLs, refreshed OCSP or settled crashed issuances. The name is now
what a restart keeps: host name, configuration file and worker index. A restarted process
renews its own lease at once.

Two live processes must never share that name, or both would think they lead. Each claims
its name with an exclusive flock on a lock file derived from it, held for the process's life;
the kernel drops it when the process dies, however it dies. A process that finds its name
claimed (a second `tetra serve` on the same config and host) takes a name of its own, unique
to it, and waits for the lease like any other process.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("tetra.jobs")


@dataclass
class HolderClaim:
    """A lease holder name and, for a stable one, the lock that keeps it ours."""

    holder: str
    stable: bool
    _fd: int | None = None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing drops the flock
            self._fd = None


MAX_HOLDER = 255  # the leases.holder column


def stable_identity(config: Path, worker: int) -> str:
    identity = f"{socket.gethostname()}:{config.resolve()}:{worker}"
    if len(identity) <= MAX_HOLDER:
        return identity
    digest = hashlib.sha256(str(config.resolve()).encode()).hexdigest()[:32]
    return f"{socket.gethostname()[: MAX_HOLDER - 48]}:{digest}:{worker}"


def lock_path(identity: str, directory: Path | None = None) -> Path:
    digest = hashlib.sha256(identity.encode()).hexdigest()[:32]
    return (directory or Path(tempfile.gettempdir())) / f"tetra-lease-{digest}.lock"


def claim_holder(config: Path, worker: int, *, lock_dir: Path | None = None) -> HolderClaim:
    """This process's stable holder name if no live process holds it, else a unique one."""
    identity = stable_identity(config, worker)
    path = lock_path(identity, lock_dir)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        log.warning("lease identity: cannot open %s (%s); using a name of this process's own", path, exc)
        return HolderClaim(_unique(), stable=False)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        log.info("lease identity %s is held by a live process; using a name of this process's own", identity)
        return HolderClaim(_unique(), stable=False)
    return HolderClaim(identity, stable=True, _fd=fd)


def _unique() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
