"""The job lease's holder name survives a restart, and two live processes never share it (ST-18)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

from ca.revocation import lease
from ca.service import CertificateAuthority
from server.jobs import LEASE
from server.lease_identity import claim_holder, stable_identity

CLAIM_AND_WAIT = """
import sys, time
from pathlib import Path
from server.lease_identity import claim_holder
claim = claim_holder(Path(sys.argv[1]), int(sys.argv[2]), lock_dir=Path(sys.argv[3]))
print(claim.holder, claim.stable, flush=True)
time.sleep(600)
"""


def _claim_in_child(config: Path, worker: int, lock_dir: Path) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CLAIM_AND_WAIT, str(config), str(worker), str(lock_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    holder, stable = child.stdout.readline().split()
    assert stable == "True"
    return child, holder


def test_a_live_process_keeps_its_name_and_a_restart_gets_it_back(tmp_path: Path) -> None:
    """ST-18: while a process holds the stable name for (host, config, worker), another one on
    the same host gets a name of its own; once the holder is killed (-9: no clean-up runs), the
    next process gets the stable name at once. Another worker index is another name."""
    config = tmp_path / "tetra.toml"
    config.write_text("")
    child, holder = _claim_in_child(config, 0, tmp_path)
    try:
        assert holder == stable_identity(config, 0)
        second = claim_holder(config, 0, lock_dir=tmp_path)
        assert not second.stable and second.holder != holder
        other_worker = claim_holder(config, 1, lock_dir=tmp_path)
        assert other_worker.stable and other_worker.holder == stable_identity(config, 1)
        other_worker.release()
    finally:
        child.kill()
        child.wait(timeout=10)
    restarted = claim_holder(config, 0, lock_dir=tmp_path)
    try:
        assert restarted.stable and restarted.holder == holder
        again = claim_holder(config, 0, lock_dir=tmp_path)  # in one process as well: one claim only
        assert not again.stable
    finally:
        restarted.release()


def test_a_long_config_path_still_fits_the_holder_column(tmp_path: Path) -> None:
    """ST-18: the name fits leases.holder (255 characters) however deep the config lies."""
    deep = tmp_path.joinpath(*(["d" * 50] * 8))
    assert len(stable_identity(deep / "tetra.toml", 3)) <= 255
    assert stable_identity(deep / "tetra.toml", 3) != stable_identity(deep / "tetra.toml", 4)


async def test_the_restarted_holder_renews_its_lease_at_once(ca: CertificateAuthority) -> None:
    """ST-18: a lease held by a process that died is refused to any other name until it expires,
    but the same name (the restarted process) takes it back at once."""
    ttl = dt.timedelta(seconds=30)
    assert await lease.acquire(ca.db, LEASE, "host:/etc/tetra.toml:0", ttl)
    started = time.monotonic()
    assert not await lease.acquire(ca.db, LEASE, "host:4242:abcd", ttl)
    assert await lease.acquire(ca.db, LEASE, "host:/etc/tetra.toml:0", ttl)
    assert time.monotonic() - started < 5
