"""ACME's own commands, mounted from its ProtocolSpec.cli: `tetra acme eab create | eab revoke`
and `tetra acme renew-now`, run as an operator runs them (server.cli.main in this
process, tests/cli_here.py, on the demo CA's SQLite)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from protocols.acme.b64 import b64d
from tests.cli_here import tetra_here
from tests.integration.test_cli import assert_clean_error


def _rows(ca_dir: Path, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(ca_dir / "tetra.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_eab_create_and_revoke_are_reachable_under_tetra_acme(ca_dir: Path) -> None:
    """The key printed is the key stored, bound to the profile, and audited as the operator."""
    cfg = str(ca_dir / "tetra.toml")
    created = tetra_here(
        "acme", "eab", "create", "--config", cfg, "--profile", "tls-server", "--key-id", "kid-1", "--operator", "alice"
    )
    assert created.returncode == 0, created.stderr
    lines = created.stdout.splitlines()
    assert lines[0] == "key id:   kid-1"
    assert lines[1].startswith("hmac key: ")
    printed = b64d(lines[1].removeprefix("hmac key: "))
    stored = _rows(ca_dir, "SELECT secret, profile, revoked_at FROM credentials WHERE key_id = 'kid-1'")
    assert stored == [(printed, "tls-server", None)]
    actors = {row[0] for row in _rows(ca_dir, "SELECT actor FROM audit_log")}
    assert "cli:alice" in actors

    revoked = tetra_here("acme", "eab", "revoke", "kid-1", "--config", cfg)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout == "revoked EAB key kid-1\n"
    assert _rows(ca_dir, "SELECT revoked_at IS NOT NULL FROM credentials WHERE key_id = 'kid-1'") == [(1,)]
    assert_clean_error(tetra_here("acme", "eab", "revoke", "kid-1", "--config", cfg), "no active EAB key 'kid-1'")


def test_an_unknown_profile_is_one_line_on_stderr_and_creates_no_key(ca_dir: Path) -> None:
    result = tetra_here("--config", str(ca_dir / "tetra.toml"), "acme", "eab", "create", "--profile", "no-such-profile")
    assert result.returncode != 0
    assert result.stderr.splitlines() == ["tetra: error: no profile named 'no-such-profile'"]
    assert result.stdout == ""
    assert _rows(ca_dir, "SELECT key_id FROM credentials WHERE protocol = 'acme'") == []


def test_renew_now_records_the_request_and_refuses_what_does_not_exist(ca_dir: Path) -> None:
    cfg = str(ca_dir / "tetra.toml")
    done = tetra_here("acme", "renew-now", "--profile", "tls-server", "--config", cfg, "--operator", "bob")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "renewalInfo now suggests renewing at once for profile tls-server\n"
    issuer = tetra_here("acme", "renew-now", "--issuer", "issuing-ca", "--config", cfg)
    assert issuer.returncode == 0, issuer.stderr
    rows = _rows(ca_dir, "SELECT scope, value, actor FROM acme_renew_now ORDER BY id")
    assert rows[0] == ("profile", "tls-server", "cli:bob")
    assert rows[1][:2] == ("issuer", "issuing-ca")
    assert_clean_error(tetra_here("acme", "renew-now", "--issuer", "nope", "--config", cfg), "no issuer named 'nope'")
    assert_clean_error(tetra_here("acme", "renew-now", "--profile", "nope", "--config", cfg), "no profile named 'nope'")
    assert_clean_error(
        tetra_here("acme", "renew-now", "--serial", "zz", "--config", cfg), "serial 'zz' is not hexadecimal"
    )
    assert_clean_error(
        tetra_here("acme", "renew-now", "--serial", "0a:0b", "--config", cfg), "no certificate with serial a0b"
    )
    assert len(_rows(ca_dir, "SELECT id FROM acme_renew_now")) == 2
