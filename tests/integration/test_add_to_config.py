"""`tetra ca init-intermediate --add-to-config` (CAL-07): the entries it appends name their files
relative to the config file's directory, so the CA directory works after being moved, from any
working directory; a name the config already has is refused in one line before any key or
certificate is made, and the config is left as it was."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.cli_here import tetra_here
from tests.helpers import make_csr
from tests.integration.test_cli import assert_clean_error


def _init_intermediate(ca_dir: Path, name: str, out_dir: Path) -> list[str]:
    return [
        "ca",
        "init-intermediate",
        "--name",
        name,
        "--out-dir",
        str(out_dir),
        "--parent-cert",
        str(ca_dir / "ca" / "root.pem"),
        "--parent-key",
        str(ca_dir / "keys" / "root.key"),
        "--parent-passphrase-file",
        str(ca_dir / "secrets" / "passphrase"),
        "--passphrase-file",
        str(ca_dir / "secrets" / "passphrase"),
        "--add-to-config",
        str(ca_dir / "tetra.toml"),
    ]


def test_entries_are_relative_and_survive_a_move(ca_dir: Path, tmp_path: Path) -> None:
    """CAL-07: relative paths in the appended entries; the moved directory still issues."""
    made = tetra_here(*_init_intermediate(ca_dir, "second-ca", ca_dir / "ca"))
    assert made.returncode == 0, made.stderr
    data = tomllib.loads((ca_dir / "tetra.toml").read_text())
    assert data["signers"]["second-ca"] == {
        "backend": "software",
        "key_file": "ca/second-ca.key",
        "passphrase_file": "secrets/passphrase",
    }
    assert data["issuers"]["second-ca"] == {"certificate": "ca/second-ca.pem", "signer": "second-ca"}

    moved = tmp_path / "elsewhere" / "ca"
    shutil.move(ca_dir, moved)
    profile = (moved / "profiles" / "tls-client.toml").read_text()
    (moved / "profiles" / "second-client.toml").write_text('issuer = "second-ca"\n' + profile)
    csr, _ = make_csr(["moved.example.com"], cn="moved")
    (tmp_path / "r.csr").write_bytes(csr.public_bytes(Encoding.PEM))
    listed = tetra_here("ca", "list", "--config", str(moved / "tetra.toml"))
    assert listed.returncode == 0 and "second-ca" in listed.stdout, listed.stderr
    issued = tetra_here("issue", "--config", str(moved / "tetra.toml"), "--csr", str(tmp_path / "r.csr"),
                   "--profile", "second-client", "--out", str(tmp_path / "leaf.pem"))  # fmt: skip
    assert issued.returncode == 0, issued.stderr
    leaf, issuer = x509.load_pem_x509_certificates((tmp_path / "leaf.pem").read_bytes())
    leaf.verify_directly_issued_by(issuer)
    assert issuer.subject.rfc4514_string() == "CN=second-ca"


def test_a_name_in_use_is_refused_before_anything_is_made(ca_dir: Path, tmp_path: Path) -> None:
    """CAL-07: the demo's own issuer name, and a name added once already: one line, nothing written."""
    cfg = ca_dir / "tetra.toml"
    existing = tomllib.loads(cfg.read_text())["ca"]["default_issuer"]
    before = cfg.read_text()
    refused = tetra_here(*_init_intermediate(ca_dir, existing, tmp_path / "out"))
    assert_clean_error(refused, f"[issuers.{existing}] already exists")
    assert cfg.read_text() == before
    assert not (tmp_path / "out" / f"{existing}.pem").exists()
    assert not (tmp_path / "out" / f"{existing}.key").exists()

    assert tetra_here(*_init_intermediate(ca_dir, "twice", tmp_path / "one")).returncode == 0
    after_first = cfg.read_text()
    again = tetra_here(*_init_intermediate(ca_dir, "twice", tmp_path / "two"))
    assert_clean_error(again, "[issuers.twice] already exists")
    assert cfg.read_text() == after_first and not (tmp_path / "two").exists()
