"""`tetra inventory` as an operator runs it (server.cli.main in this process, tests/cli_here.py,
on the demo CA's SQLite store): import from files and another CA's export, edit, search, show,
list filters, and an export that round-trips into another Tetra. CLM-08: cells that a
spreadsheet would run as formulas are neutralised on export and restored on import."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding, pkcs12

from tests.cli_here import tetra_here
from tests.discovery_pki import issue
from tests.integration.test_cli import assert_clean_error
from tests.inventory_certs import legacy_der


def _other_ca_export(tmp_path: Path) -> tuple[Path, x509.Certificate]:
    """A CSV as another CA exports it: PEM in a column, owner and tags, one owner a formula."""
    cert = issue("vpn.example.org", issuer=None, names=["vpn.example.org"]).cert
    path = tmp_path / "other-ca.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["certificate", "owner", "team", "tags"])
        writer.writerow(
            [cert.public_bytes(Encoding.PEM).decode(), '=HYPERLINK("http://evil.example")', "net", "vpn;pci"]
        )
    return path, cert


def _json(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


def _imported_count(ca_dir: Path) -> int:
    with sqlite3.connect(ca_dir / "tetra.db") as db:
        (count,) = db.execute("SELECT count(*) FROM inventory WHERE source = 'imported'").fetchone()
    return int(count)


def test_import_edit_search_show_and_export_round_trip(ca_dir: Path, tmp_path: Path) -> None:
    """Each command once, as an operator chains them (each command opens the CA, so the
    store-level details are the unit tests' job: tests/unit/ca/inventory)."""
    elsewhere = tmp_path / "elsewhere"  # another Tetra, fresh, that the export moves into
    shutil.copytree(ca_dir, elsewhere)
    cfg = ["--config", str(ca_dir / "tetra.toml")]
    bundle = tmp_path / "bundle.pem"
    two = [issue(f"h{n}.shop.example.com", issuer=None, names=[f"h{n}.shop.example.com"]) for n in range(2)]
    bundle.write_bytes(b"".join(i.cert.public_bytes(Encoding.PEM) for i in two))
    p12 = tmp_path / "server.p12"
    keyed = issue("pay.example.com", issuer=None, names=["pay.example.com"])
    p12.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"pay", keyed.key, keyed.cert, None, serialization.BestAvailableEncryption(b"s3cret")
        )
    )
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("wrong\ns3cret\n")
    export, other = _other_ca_export(tmp_path)
    legacy = tmp_path / "printer.der"
    legacy.write_bytes(legacy_der("printer.corp.example", tmp_path, days=20))

    # One bad file among good ones: named, nothing imported.
    junk = tmp_path / "notes.txt"
    junk.write_text("not a certificate")
    assert_clean_error(tetra_here("inventory", "import", str(bundle), str(junk), *cfg), "notes.txt", "nothing imported")
    assert _imported_count(ca_dir) == 0

    imported = tetra_here(
        "inventory", "import", str(bundle), str(p12), str(export), str(legacy), "--passphrase-file", str(phrases),
        "--team", "shop", *cfg,
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert "imported 5 certificates from 4 file(s): 5 new" in imported.stdout

    rows = {
        r["subject"]: r
        for r in _json(tetra_here("inventory", "list", "--source", "imported", "--format", "json", *cfg))
    }
    vpn = rows[other.subject.rfc4514_string()]
    assert (
        vpn["owner"] == '=HYPERLINK("http://evil.example")' and vpn["team"] == "net" and vpn["tags"] == ["pci", "vpn"]
    )
    assert rows[keyed.cert.subject.rfc4514_string()]["team"] == "shop"  # the option fills what the file does not say

    weak = tetra_here(
        "inventory", "list", "--key-size-below", "2048", "--signature-algorithm", "sha1WithRSAEncryption",
        "--format", "json", *cfg,
    )  # fmt: skip
    assert [r["subject"] for r in _json(weak)] == ["CN=printer.corp.example"]
    found = _json(tetra_here("inventory", "search", "shop.example.com", "--format", "json", *cfg))
    assert sorted(str(r["subject"]) for r in found) == ["CN=h0.shop.example.com", "CN=h1.shop.example.com"]
    fingerprint = keyed.cert.fingerprint(hashes.SHA256()).hex()
    by_serial = _json(
        tetra_here("inventory", "search", format(keyed.cert.serial_number, "x"), "--format", "json", *cfg)
    )
    assert [r["fingerprint"] for r in by_serial] == [fingerprint]

    edited = tetra_here(
        "inventory", "edit", fingerprint[:12], "--owner", "ops@example.com", "--tag", "payments",
        "--renewal", "acme", *cfg,
    )  # fmt: skip
    assert edited.returncode == 0, edited.stderr
    assert "owner ops@example.com" in edited.stdout and "renewal acme" in edited.stdout
    assert "tags payments" in edited.stdout
    assert_clean_error(tetra_here("inventory", "edit", fingerprint[:12], *cfg), "nothing to change")
    pem = tetra_here("inventory", "show", fingerprint, "--pem", *cfg)
    assert x509.load_pem_x509_certificate(pem.stdout.encode()) == keyed.cert

    # CLM-08: the export neutralises the formula; importing it elsewhere restores the value.
    exported = tetra_here("inventory", "export", "--source", "imported", "--format", "csv", *cfg)
    assert exported.returncode == 0, exported.stderr
    table = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert len(table) == 5
    owners = {r["subject"]: r["owner"] for r in table}
    assert owners[other.subject.rfc4514_string()] == '\'=HYPERLINK("http://evil.example")'
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in table for cell in row.values())
    (tmp_path / "export.csv").write_text(exported.stdout)
    json_export = tetra_here("inventory", "export", "--format", "json", "--out", str(tmp_path / "all.json"), *cfg)
    assert json_export.returncode == 0 and "exported" in json_export.stderr

    other_cfg = ["--config", str(elsewhere / "tetra.toml")]
    moved = tetra_here("inventory", "import", str(tmp_path / "export.csv"), *other_cfg)
    assert "imported 5 certificates" in moved.stdout, moved.stderr
    there = {r["subject"]: r for r in _json(tetra_here("inventory", "list", "--format", "json", *other_cfg))}
    assert there[other.subject.rfc4514_string()]["owner"] == '=HYPERLINK("http://evil.example")'
    assert there[keyed.cert.subject.rfc4514_string()]["owner"] == "ops@example.com"
    assert there[keyed.cert.subject.rfc4514_string()]["renewal_method"] == "acme"
    everything = json.loads((tmp_path / "all.json").read_text())
    from_json = tetra_here("inventory", "import", str(tmp_path / "all.json"), *other_cfg)
    assert from_json.returncode == 0, from_json.stderr
    # The five imported are known there now; the rest of the export (this CA's own) is new to it.
    assert f"imported {len(everything)} certificates" in from_json.stdout
    assert f"{len(everything) - len(there)} new" in from_json.stdout


def test_bad_filters_are_one_line(ca_dir: Path) -> None:
    cfg = ["--config", str(ca_dir / "tetra.toml")]
    assert_clean_error(tetra_here("inventory", "list", "--limit", "0", *cfg), "--limit")
    assert_clean_error(tetra_here("inventory", "list", "--expiring", "-1", *cfg), "--expiring")
    assert_clean_error(tetra_here("inventory", "show", "zz", *cfg), "neither an inventory id nor a fingerprint")
    assert_clean_error(tetra_here("inventory", "import", "/nonexistent.pem", *cfg), "nonexistent.pem")
    assert_clean_error(tetra_here("inventory", "show", "999999", *cfg), "no certificate")
