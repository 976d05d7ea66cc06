"""ST-23: docs/postgresql.md runs as written. Every `sh` block, in order, in one shell session
(tests/doc_shell.py) in a directory holding the CA that `make run` leaves in var/ (SQLite, one
certificate revoked), against a uniquely named PostgreSQL database the guide's own `createdb`
creates; the `tetra serve` blocks run in the background until the guide is done, and the
second instance answers OCSP for the moved CA as the first does."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from tests.conftest import PG_ADMIN, _pg_exec
from tests.doc_blocks import Block, blocks
from tests.doc_shell import ShellSession
from tests.integration.test_cli import assert_clean_error, tetra
from tests.integration.test_db_copy import _issue, _ok
from tests.revocation_support import check_ocsp, request_der
from tests.tetra_process import free_port

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "postgresql.md"
SECOND_INSTANCE = "http://127.0.0.1:9080"  # the ports the guide gives its second instance


def _sh_blocks() -> list[Block]:
    return [b for b in blocks(GUIDE) if b.language == "sh"]


def _reader_env(tmp_path: Path, db_name: str, http_port: int, https_port: int) -> dict[str, str]:
    """The reader's shell: `tetra` on PATH (this checkout, this interpreter), no TETRA_ settings of
    the test runner's; the database name and the first instance's ports are the test's own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "tetra"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m server.cli "$@"\n')
    shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETRA_")}
    return {
        **env,
        "PATH": f"{bin_dir}:{env['PATH']}",
        "PYTHONPATH": str(REPO),
        "TETRA_DB": db_name,
        "TETRA_SERVER__HTTP": f"127.0.0.1:{http_port}",
        "TETRA_SERVER__HTTPS": f"127.0.0.1:{https_port}",
        "TETRA_MANAGE__LISTEN": f"127.0.0.1:{free_port()}",  # not the demo's 8444, which another test may hold
        "TETRA_SERVER__PROTOCOLS": '["ocsp"]',
        "TETRA_OCSP__RESPONDER_COUNTRY": "US",  # the BR lint of the responder certificate wants it
    }


class Background:
    """`tetra serve` blocks, each left running as the reader's terminal would keep it."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, session: ShellSession, block: Block, ready_url: str) -> None:
        log = (self.tmp_path / f"serve-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            ["bash", "-euo", "pipefail", "-c", "\n".join([*session.carried, block.text])],
            cwd=session.cwd,
            env=session.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"{block.text}: exited: {Path(log.name).read_text()[-3000:]}"
            try:
                with urllib.request.urlopen(f"{ready_url}/readyz", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{block.text}: not ready: {Path(log.name).read_text()[-3000:]}"
            time.sleep(0.2)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


@pytest.fixture
def guide_db() -> Iterator[str]:
    """A name no one else uses; the guide's `createdb` creates it, the test drops it."""
    name = f"tetra_guide_{secrets.token_hex(6)}"
    try:
        yield name
    finally:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _ocsp_status(base: str, cert: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPResponse:
    post = urllib.request.Request(
        f"{base}/ocsp", data=request_der(cert, issuer), headers={"Content-Type": "application/ocsp-request"}
    )
    with urllib.request.urlopen(post, timeout=10) as reply:
        return check_ocsp(reply.read(), issuer)


def test_the_guide_runs_as_written(template_dir: Path, tmp_path: Path, guide_db: str) -> None:
    """ST-23: createdb, the URL, `db upgrade` creating the schema, `db copy` from var/tetra.db,
    audit verify and inventory list on the copy, then two instances serving it."""
    work = tmp_path / "work"
    shutil.copytree(template_dir, work / "var")  # what `make run` leaves: a demo CA on SQLite
    revoked = _issue(work / "var", tmp_path, "www.example.com")
    _ok("revoke", f"{revoked.serial_number:x}", "--reason", "keyCompromise", "--config", str(work / "var/tetra.toml"))
    issuer = x509.load_pem_x509_certificate((work / "var" / "ca" / "issuing-ca.pem").read_bytes())

    http_port = free_port()
    session = ShellSession(work, _reader_env(tmp_path, guide_db, http_port, free_port()))
    servers = Background(tmp_path)
    printed: dict[str, str] = {}
    try:
        for block in _sh_blocks():
            if "tetra serve" in block.text:
                second = "TETRA_SERVER__HTTP=127.0.0.1:9080" in block.text
                base = SECOND_INSTANCE if second else f"http://127.0.0.1:{http_port}"
                servers.start(session, block, base)
                answer = _ocsp_status(base, revoked, issuer)
                assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED, block.text
                assert answer.revocation_reason == x509.ReasonFlags.key_compromise
                printed[block.heading] = printed.get(block.heading, "") + "served\n"
            else:
                printed[block.heading] = printed.get(block.heading, "") + session.run_ok(block.text)
    finally:
        servers.stop()

    assert list(printed) == [
        "Create the database",
        "Create the schema",
        "Move the CA from SQLite",
        "Serve",
        "Several instances on one database",
    ]
    assert "created the Tetra schema (revision" in printed["Create the schema"]
    moved = printed["Move the CA from SQLite"]
    assert "verified: every row equal in both databases; audit chain intact" in moved, moved
    assert "audit log intact:" in moved and f"{revoked.serial_number:x}" in moved, moved
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{guide_db}"
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT status FROM certificates WHERE serial = %s", (f"{revoked.serial_number:x}",))
        assert row.fetchall() == [("revoked",)]


def test_the_guides_config_example_is_the_key_tetra_reads() -> None:
    """ST-23: the `toml` block parses and names `[database] url`, the key the environment overrides."""
    (example,) = [b for b in blocks(GUIDE) if b.language == "toml"]
    assert tomllib.loads(example.text)["database"]["url"].startswith("postgresql://")


def test_init_creates_the_ca_in_the_database_the_environment_names(tmp_path: Path, postgres_url: str) -> None:
    """ST-23: `tetra init` with TETRA_DATABASE__URL set writes the schema and the CA's first
    records to PostgreSQL, as the guide says, and no SQLite file appears; a second `tetra init`
    on that database is refused before it writes anything."""
    env = {"TETRA_DATABASE__URL": postgres_url}
    out = _ok("init", "--dir", str(tmp_path / "ca"), "--http", f"127.0.0.1:{free_port()}", env=env)
    assert f"database:                 {postgres_url}" in out, out
    assert not (tmp_path / "ca" / "tetra.db").exists()
    with psycopg.connect(postgres_url) as conn:
        issued = conn.execute("SELECT count(*) FROM certificates WHERE status = 'issued'").fetchone()
    assert issued is not None and issued[0] >= 2
    again = tetra("init", "--dir", str(tmp_path / "second"), env=env)
    assert_clean_error(again, "already holds records", "give tetra init an empty database")
    assert not (tmp_path / "second").exists()
