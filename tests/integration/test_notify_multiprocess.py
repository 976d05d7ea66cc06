"""CLM-02 across processes: two `tetra notify run` processes at once on one PostgreSQL database,
then a third run (the restart), send exactly one message per (certificate, rule, recipient) to
a real SMTP server on loopback."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ca.inventory.model import NewEntry, Source
from ca.store.migrate import upgrade
from server.wiring import build_ca, read_config
from tests.inventory_certs import foreign_der, legacy_der
from tests.notify_support import ADMIN, TEAM, SmtpSink

pytestmark = pytest.mark.slow

DAY = dt.timedelta(days=1)


def _notifications(port: int) -> str:
    return f"""
[notifications]
admin_email = ["{ADMIN}"]
[notifications.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
sender = "tetra@example.com"
[notifications.teams.web]
email = ["{TEAM}"]
"""


async def _import(config_path: Path, url: str, tmp_path: Path) -> None:
    """Five certificates from another CA, 10 days from expiry (the 14-day notice: owner and
    team), and one RSA-1024/SHA-1 certificate (weak key, weak signature: its owner)."""
    config = read_config(config_path, environ={"TETRA_DATABASE__URL": url})
    ca = await build_ca(config, open_signers=False)
    try:
        now = dt.datetime.now(dt.UTC)
        entries = [
            NewEntry(
                foreign_der(f"host{n}.example.org", not_before=now - 80 * DAY, not_after=now + 10 * DAY),
                Source.IMPORTED,
                owner=f"owner{n}@example.com",
                team="web",
            )
            for n in range(5)
        ]
        entries.append(NewEntry(legacy_der("legacy.example.org", tmp_path), Source.IMPORTED, owner="old@example.com"))
        await ca.inventory.add(entries, actor="test", now=now)
    finally:
        await ca.close()


def _run(config: Path, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "server.cli", "notify", "run", "--config", str(config)],
        env=os.environ | {"TETRA_DATABASE__URL": url, "PYTHONPATH": str(Path.cwd())},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_and_a_restart_send_each_notice_once(ca_dir: Path, postgres_url: str, tmp_path: Path) -> None:
    """CLM-02: exactly one email per (certificate, threshold or rule, recipient)."""
    upgrade(postgres_url)
    with SmtpSink() as sink:
        config = ca_dir / "notify.toml"
        config.write_text((ca_dir / "tetra.toml").read_text() + _notifications(sink.port))
        asyncio.run(_import(config, postgres_url, tmp_path))
        both = [_run(config, postgres_url) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in both]
        for process, (_, err) in zip(both, outputs, strict=True):
            assert process.returncode == 0, err
        queued = sum(int(out.split(" newly queued")[0].rsplit(" ", 1)[1]) for out, _ in outputs)
        sent = sum(int(out.split("delivered: ")[1].split(",")[0]) for out, _ in outputs)
        assert queued == sent == 12, outputs  # between them, each notice queued and sent once
        restart = _run(config, postgres_url)
        out, err = restart.communicate(timeout=120)
        assert restart.returncode == 0, err
        assert "0 newly queued" in out and "delivered: 0," in out
        received = sink.received()
    counts = collections.Counter(received)
    assert all(n == 1 for n in counts.values()), counts
    expected = {(f"owner{n}@example.com", f"host{n}.example.org") for n in range(5)}
    expected |= {(TEAM, f"host{n}.example.org") for n in range(5)}
    assert {(r, s.split()[2]) for r, s in received if "expires in" in s} == expected
    assert all("expires in 10 days" in s for _, s in received if "expires" in s)
    weak = sorted(s.split(": ")[-1] for r, s in received if r == "old@example.com")
    assert weak == ["weak-key", "weak-signature"]
    assert len(received) == 12
