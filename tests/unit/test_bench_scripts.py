"""`make bench` is not part of `make test`, so its scripts could rot unseen: each must at least
import everything it uses and parse its arguments (the SCEP one also runs, in miniature)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pkilint_check import assert_certificate_lints_clean

BENCH = Path(__file__).resolve().parents[2] / "bench"


SCRIPTS = sorted(p.name for p in BENCH.glob("bench_*.py"))


@pytest.fixture(scope="module")
def helps() -> dict[str, list[object]]:
    """Every script's `--help`, run by one child process (tests/bench_help.py): {script: [exit
    code, stdout, stderr]}. One interpreter start and one set of shared imports for them all."""
    helper = Path(__file__).resolve().parents[1] / "bench_help.py"
    done = subprocess.run(
        [sys.executable, str(helper), *(str(BENCH / s) for s in SCRIPTS)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    results: dict[str, list[object]] = json.loads(done.stdout)
    return results


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_starts(script: str, helps: dict[str, list[object]]) -> None:
    returncode, stdout, stderr = helps[script]
    assert returncode == 0, stderr
    assert "usage:" in str(stdout)


def test_bench_scep_runs_against_both_servers(tmp_path: Path) -> None:
    """bench_scep.py end to end in a tiny configuration (a few PKCSReqs, concurrency 2) against
    `tetra serve` and micromdm's scepserver, so that the benchmark cannot rot: both servers
    answer SUCCESS with a certificate for the device's key (sample CertReps parsed in full; for
    Tetra strictly, SCEP-12: RA signature, recipientNonce = senderNonce, transactionID), Tetra
    fails none, and the record is written. Tetra's sample certificates pass pkilint. Whether a row
    ran out of messages ("raise --messages") depends on how fast this machine is that minute, so
    it is not asserted: a quiet machine sends all 40 within the half-second window. 40, not more:
    each device is an RSA-2048 key made before the run (about 50 ms of CPU each)."""
    output = tmp_path / "scep.md"
    certificates = tmp_path / "certificates"
    arguments = ["--concurrency", "2", "--messages", "40", "--sample", "2", "--warmup", "0.1", "--seconds", "0.4"]
    arguments += ["--output", str(output), "--certificates", str(certificates)]
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_scep.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["server"]: row for row in json.loads(output.with_suffix(".json").read_text())["rows"]}
    assert set(rows) == {"Tetra", "micromdm scepserver"}
    for row in rows.values():
        assert row["concurrency"] == 2 and row["successes"] > 0, row
        assert not any(note.startswith("sample reply wrong") for note in row["notes"]), row
    assert rows["Tetra"]["failures"] == 0, rows["Tetra"]["notes"]
    assert "| Tetra | 2 |" in output.read_text()
    issued = sorted(certificates.glob("*.der"))
    assert len(issued) == 2
    for path in issued:
        assert_certificate_lints_clean(path.read_bytes())


def test_bench_cmp_runs_against_both_servers(tmp_path: Path) -> None:
    """bench_cmp.py end to end in a tiny configuration (MAC and signature rows at concurrency 2,
    the core row beside them) against `tetra serve` and `openssl cmp -port`'s mock, so that the
    benchmark cannot rot: both servers answer irs with an ip carrying a certificate (sample
    replies read in full: protection, transactionID, recipNonce, implicitConfirm; Tetra's for the
    request's key), Tetra fails none, and the record is written. Tetra's sample certificates
    pass pkilint."""
    output = tmp_path / "cmp.md"
    certificates = tmp_path / "certificates"
    arguments = ["--concurrency", "2", "--messages", "150", "--sample", "1", "--warmup", "0.1", "--seconds", "0.4"]
    arguments += ["--output", str(output), "--certificates", str(certificates)]
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_cmp.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {
        (row["server"], row["protection"]): row for row in json.loads(output.with_suffix(".json").read_text())["rows"]
    }
    assert set(rows) == {
        ("Tetra core (no HTTP)", "-"),
        *((server, p) for server in ("Tetra", "openssl cmp mock") for p in ("mac", "sig")),
    }
    for row in rows.values():
        assert row["concurrency"] == 2 and row["round_trips"] > 0, row
        assert not any(note.startswith("sample reply wrong") for note in row["notes"]), row
    assert all(row["failures"] == 0 for (server, _), row in rows.items() if server.startswith("Tetra")), rows
    assert "| Tetra | mac | 2 |" in output.read_text()
    issued = sorted(certificates.glob("*.der"))
    assert len(issued) == 2
    for path in issued:
        assert_certificate_lints_clean(path.read_bytes())


def test_bench_inventory_runs_and_drops_its_database(tmp_path: Path) -> None:
    """bench_inventory.py end to end on a small population, so that the benchmark cannot rot: it
    migrates a fresh PostgreSQL database, loads it by COPY (indexes rebuilt from the migration's
    own definitions), times every query through InventoryStore, writes the record with a row per
    query that found certificates, and drops its database afterwards."""
    import psycopg

    output = tmp_path / "inventory.md"
    arguments = ["--certificates", "3000", "--repeat", "2", "--explain", "--output", str(output)]
    process = subprocess.Popen(
        [sys.executable, str(BENCH / "bench_inventory.py"), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    record = output.read_text()
    rows = [line for line in record.splitlines() if line.startswith("| ") and line.endswith(("| met |", "| MISSED |"))]
    assert len(rows) == 9, record
    for row in rows:
        found = int(row.split("|")[-3].strip().replace(",", ""))
        assert 0 < found <= 3000, row
    assert "Loaded 3,000 certificates" in record and "Execution Time" in record
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_database WHERE datname = %s", (f"tetra_bench_inventory_{process.pid}",)
        ).fetchone()
    assert left == (0,)


def test_bench_discovery_runs_in_miniature(tmp_path: Path) -> None:
    """bench_discovery.py end to end in miniature (2 listener processes x 3 loopback addresses, a
    tree of 40 files), so that the benchmark cannot rot: `tetra discover scan` and `files` run as
    processes and the in-process probe and walk find every endpoint (both handshakes, the chain)
    and every file as its kind (CLM-06, CLM-07); the listeners saw the probe's four connections
    and two completed handshakes per endpoint; what was found is recorded alone too; the record
    is written."""
    output = tmp_path / "discovery.md"
    arguments = ["--addresses", "3", "--listeners", "2", "--files", "40", "--concurrency", "4", "--output", str(output)]
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_discovery.py"), *arguments], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["what"]: row for row in json.loads(output.with_suffix(".json").read_text())["rows"]}
    assert all(row["failures"] == 0 for row in rows.values()), rows
    endpoint_rows = [row for row in rows.values() if row["connections"] is not None]
    assert len(endpoint_rows) == 3  # the CLI, then the probe alone on asyncio and on uvloop
    for row in endpoint_rows:
        assert (row["items"], row["connections"], row["handshakes"]) == (6, 24, 12), row
    assert rows["`tetra discover files` (process, start to exit)"]["items"] == 40
    assert rows["scan_paths alone, pkcs12 only"]["note"] == "4 read, 0 reported unread"
    assert rows["ScanStore.record alone (network, batches of 100)"]["items"] == 6
    assert rows["ScanStore.record alone (files, batches of 200)"]["items"] == 28  # 26 read, 2 keys alone
    assert "| scan_paths alone, whole tree | 40 |" in output.read_text()
