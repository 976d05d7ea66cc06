"""`tetra report` as an operator runs it: server.cli.main in this process
(tests/cli_here.py) on a demo CA's SQLite store, reports on
standard output or written whole to --out, and bad input refused in one line before the CA is
opened."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from ca.inventory.model import NewEntry, Source
from server.wiring import build_ca, read_config
from tests.cli_here import tetra_here
from tests.inventory_certs import legacy_der

OWNER = '=HYPERLINK("http://evil.example/","x")'


def _import_legacy(ca_dir: Path, tmp_path: Path) -> None:
    """An RSA-1024/SHA-1 certificate ending in 10 days, imported with a formula for an owner."""

    async def run() -> None:
        ca = await build_ca(read_config(ca_dir / "tetra.toml"), open_signers=False)
        try:
            der = legacy_der("old.legacy.example.org", tmp_path, days=10)
            entry = NewEntry(der, Source.IMPORTED, owner=OWNER, team="ops")
            await ca.inventory.add([entry], actor="test", now=dt.datetime.now(dt.UTC))
        finally:
            await ca.close()

    asyncio.run(run())


def test_report_expiring_json_csv_and_html_file(ca_dir: Path, tmp_path: Path) -> None:
    """CLM-08 through the CLI: the CSV's owner cell is neutralised; the JSON lists the one
    certificate ending within 30 days; the HTML goes whole into --out with nothing left beside it."""
    _import_legacy(ca_dir, tmp_path)
    config = str(ca_dir / "tetra.toml")

    result = tetra_here("report", "expiring", "--days", "30", "--format", "json", "--config", config)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert [(row["subject"], row["owner"], row["days_left"]) for row in document["rows"]] == [
        ("CN=old.legacy.example.org", OWNER, 9)
    ]

    result = tetra_here("report", "expiring", "--config", config)  # csv by default, 30 days by default
    assert result.returncode == 0, result.stderr
    header, *rows = list(csv.reader(io.StringIO(result.stdout)))
    assert [row[header.index("owner")] for row in rows] == ["'" + OWNER]

    out = tmp_path / "reports" / "inventory.html"
    out.parent.mkdir()
    result = tetra_here("report", "inventory", "--format", "html", "--out", str(out), "--config", config)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and f"-> {out}" in result.stderr
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 3 and "CN=old.legacy.example.org" in page
    assert [p.name for p in out.parent.iterdir()] == ["inventory.html"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["expiring", "--days", "-5"], "--days -5: must be from 0 to 3650"),
        (["expiring", "--days", "soon"], "--days 'soon': not a whole number"),
        (["issued", "--weeks", "0"], "--weeks 0: must be from 1 to 520"),
        (["weak", "--format", "xml"], "--format 'xml': choose one of csv, json, html"),
        (
            ["inventory", "--out", "/nonexistent-dir/x.csv"],
            "--out /nonexistent-dir/x.csv: no such directory '/nonexistent-dir'",
        ),
    ],
)
def test_report_bad_input_is_one_line(ca_dir: Path, args: list[str], message: str) -> None:
    result = tetra_here("report", *args, "--config", str(ca_dir / "tetra.toml"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"tetra: error: {message}\n"
