"""ST-22: `tetra db copy` moves a CA from SQLite to PostgreSQL whole: every row equal, the audit
chain intact, sequences moved on, and `tetra serve` on the copy answering OCSP exactly as the
original did; a destination with rows, or a bad URL, is refused in one line and nothing changes.
The commands run in this process (tests/cli_here.py), `tetra serve` as a real one, on the demo
CA's SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import re
import sqlite3
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from tests.cli_here import tetra_here
from tests.helpers import make_csr
from tests.integration.serverproc import ServerProcess
from tests.integration.test_cli import assert_clean_error
from tests.pkilint_check import assert_certificate_lints_clean
from tests.revocation_support import check_ocsp, request_der

NAMES = ("www.example.com", "api.example.com", "mail.example.com")


@dataclass(frozen=True)
class Answer:
    status: ocsp.OCSPCertStatus
    revoked_at: object
    reason: object
    responder_serial: int


@dataclass
class SqliteCa:
    directory: Path
    certificates: list[x509.Certificate]

    @property
    def config(self) -> str:
        return str(self.directory / "tetra.toml")

    @property
    def url(self) -> str:
        return f"sqlite:///{self.directory / 'tetra.db'}"


def _ok(*args: str, env: dict[str, str] | None = None) -> str:
    done = tetra_here(*args, env=env)
    assert done.returncode == 0, f"tetra {' '.join(args)}: {done.stderr}"
    return done.stdout


def _issue(ca_dir: Path, tmp_path: Path, name: str, env: dict[str, str] | None = None) -> x509.Certificate:
    csr, _ = make_csr([name])
    request, out = tmp_path / f"{name}.csr", tmp_path / f"{name}.pem"
    request.write_bytes(csr.public_bytes(Encoding.PEM))
    config = str(ca_dir / "tetra.toml")
    _ok("issue", "--config", config, "--csr", str(request), "--profile", "tls-server", "--out", str(out), env=env)
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert_certificate_lints_clean(cert.public_bytes(Encoding.DER), "cabf-serverauth")
    return cert


@pytest.fixture
def sqlite_ca(ca_dir: Path, tmp_path: Path) -> SqliteCa:
    """The demo CA with three certificates (one revoked for key compromise), an ACME EAB key and
    an ACME renew-now request: rows in the core's tables and in ACME's, with ids to carry over."""
    certificates = [_issue(ca_dir, tmp_path, name) for name in NAMES]
    config = str(ca_dir / "tetra.toml")
    _ok("revoke", f"{certificates[1].serial_number:x}", "--reason", "keyCompromise", "--config", config)
    _ok("acme", "eab", "create", "--config", config, "--profile", "tls-server", "--key-id", "kid-1")
    _ok("acme", "renew-now", "--profile", "tls-server", "--config", config)
    return SqliteCa(ca_dir, certificates)


def _ocsp_answers(ca: SqliteCa, db_url: str, log: Path) -> list[Answer]:
    issuer = x509.load_pem_x509_certificate((ca.directory / "ca" / "issuing-ca.pem").read_bytes())
    server = ServerProcess(
        ca.directory / "tetra.toml",
        db_url,
        log,
        {"TETRA_SERVER__PROTOCOLS": '["ocsp"]', "TETRA_OCSP__RESPONDER_COUNTRY": "US"},
    )
    answers = []
    try:
        server.wait_ready()
        for cert in ca.certificates:
            post = urllib.request.Request(
                f"{server.base}/ocsp",
                data=request_der(cert, issuer),
                headers={"Content-Type": "application/ocsp-request"},
            )
            with urllib.request.urlopen(post, timeout=10) as reply:
                answer = check_ocsp(reply.read(), issuer)
            revoked = answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
            answers.append(
                Answer(
                    answer.certificate_status,
                    answer.revocation_time_utc if revoked else None,
                    answer.revocation_reason if revoked else None,
                    answer.certificates[0].serial_number,
                )
            )
    finally:
        server.stop()
    return answers


def _pg_rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def _sqlite_rows(ca: SqliteCa, sql: str) -> list[tuple[object, ...]]:
    db = sqlite3.connect(ca.directory / "tetra.db")
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_a_sqlite_ca_copied_to_postgresql_answers_ocsp_the_same(
    sqlite_ca: SqliteCa, postgres_url: str, tmp_path: Path
) -> None:
    """ST-22: the copy is whole and verified, and the CA serving from it is the same CA."""
    before = _ocsp_answers(sqlite_ca, sqlite_ca.url, tmp_path / "serve-sqlite.log")
    assert [a.status for a in before] == [
        ocsp.OCSPCertStatus.GOOD,
        ocsp.OCSPCertStatus.REVOKED,
        ocsp.OCSPCertStatus.GOOD,
    ]
    assert before[1].reason == x509.ReasonFlags.key_compromise
    source_certificates = _sqlite_rows(sqlite_ca, "SELECT id, serial, status FROM certificates ORDER BY id")

    with_password = postgres_url.replace("postgres@", "postgres:hunter2@")  # trust: the password is unused
    copied = _ok("db", "copy", "--from", sqlite_ca.url, "--to", with_password)
    assert "hunter2" not in copied and "postgres:***@" in copied, copied
    assert "created the schema first" in copied
    counts = dict(re.findall(r"^  (\w+) +(\d+) rows$", copied, re.MULTILINE))
    assert counts["certificates"] == str(len(source_certificates)) and counts["acme_renew_now"] == "1", copied
    assert counts["credentials"] == "1" and int(counts["audit_log"]) > 5, copied
    assert "every row equal in both databases; audit chain intact" in copied

    assert _pg_rows(postgres_url, "SELECT id, serial, status FROM certificates ORDER BY id") == source_certificates
    assert _sqlite_rows(sqlite_ca, "SELECT id, serial, status FROM certificates ORDER BY id") == source_certificates

    after = _ocsp_answers(sqlite_ca, postgres_url, tmp_path / "serve-postgres.log")
    assert after == before  # same status, revocation time and reason, same responder certificate

    on_copy = {"TETRA_DATABASE__URL": postgres_url}
    config = sqlite_ca.config
    verified = _ok("audit", "verify", "--config", config, env=on_copy)
    assert verified.startswith("audit log intact:"), verified
    # The sequences moved past the copied ids: new rows in core and ACME tables insert cleanly.
    _issue(sqlite_ca.directory, tmp_path, "new.example.com", env=on_copy)
    _ok("acme", "renew-now", "--profile", "tls-server", "--config", config, env=on_copy)
    ids = [int(str(row[0])) for row in _pg_rows(postgres_url, "SELECT id FROM certificates ORDER BY id")]
    assert ids[:-1] == [int(str(row[0])) for row in source_certificates] and ids[-1] > ids[-2]
    assert _pg_rows(postgres_url, "SELECT id FROM acme_renew_now ORDER BY id") == [(1,), (2,)]


def test_a_destination_with_rows_is_refused_and_left_as_it_was(sqlite_ca: SqliteCa, postgres_url: str) -> None:
    """ST-22: copying twice into the same database is refused in one line; nothing is added."""
    _ok("db", "copy", "--from", sqlite_ca.url, "--to", postgres_url)
    snapshot = "SELECT count(*), max(id) FROM certificates UNION ALL SELECT count(*), max(seq) FROM audit_log"
    rows_before = _pg_rows(postgres_url, snapshot)
    again = tetra_here("db", "copy", "--from", sqlite_ca.url, "--to", postgres_url)
    assert_clean_error(again, "is not empty", "give an empty database")
    assert again.stdout == ""
    assert _pg_rows(postgres_url, snapshot) == rows_before
    # The refused copy left the audit chain as the first copy wrote it.
    verified = _ok("audit", "verify", "--config", sqlite_ca.config, env={"TETRA_DATABASE__URL": postgres_url})
    assert verified.startswith("audit log intact:")


def test_a_destination_with_foreign_tables_is_refused(ca_dir: Path, postgres_url: str) -> None:
    """ST-22: a database holding something else is not taken for an empty one."""
    source = SqliteCa(ca_dir, [])
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE payroll (id integer)")
    refused = tetra_here("db", "copy", "--from", source.url, "--to", postgres_url)
    assert_clean_error(refused, "schema is at nothing", "give an empty database")
    assert _pg_rows(postgres_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == [("payroll",)]


@pytest.mark.parametrize(
    ("source", "destination", "fragments"),
    [
        ("sqlite:///{dir}/missing.db", "sqlite:///{dir}/copy.db", ("no such SQLite file",)),
        ("{ca}", "not-a-url", ("not a database URL",)),
        ("{ca}", "mysql://user:s3cret@host/db", ("unsupported backend", "***")),
        ("{ca}", "postgresql://postgres:s3cret@127.0.0.1:1/tetra", ("copy failed, nothing was written",)),
        ("{ca}", "{ca}", ("the same database",)),
    ],
)
def test_bad_urls_are_one_line_errors(
    ca_dir: Path, tmp_path: Path, source: str, destination: str, fragments: tuple[str, ...]
) -> None:
    """ST-22: a wrong URL is named (password masked) in one line; no file appears."""
    fill = {"dir": str(tmp_path), "ca": SqliteCa(ca_dir, []).url}
    result = tetra_here("db", "copy", "--from", source.format(**fill), "--to", destination.format(**fill))
    assert_clean_error(result, *fragments)
    assert "s3cret" not in result.stderr
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "copy.db").exists()


def test_a_row_the_destination_alters_is_caught_and_rolled_back(ca_dir: Path, postgres_url: str) -> None:
    """ST-22: the row-by-row check can fail: a trigger that rewrites a column on insert makes the
    copy refuse, naming the table and column, and the destination keeps no row."""
    from ca.store.migrate import upgrade

    upgrade(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION tamper() RETURNS trigger AS $$ BEGIN NEW.requester := 'someone-else'; RETURN NEW; END $$"
            " LANGUAGE plpgsql"
        )
        conn.execute("CREATE TRIGGER tamper BEFORE INSERT ON certificates FOR EACH ROW EXECUTE FUNCTION tamper()")
    refused = tetra_here("db", "copy", "--from", SqliteCa(ca_dir, []).url, "--to", postgres_url)
    assert_clean_error(refused, "table certificates: row 1 differs in column requester")
    assert _pg_rows(postgres_url, "SELECT count(*) FROM certificates UNION ALL SELECT count(*) FROM audit_log") == [
        (0,),
        (0,),
    ]


def test_a_source_whose_audit_chain_is_broken_is_not_copied(ca_dir: Path, tmp_path: Path) -> None:
    """ST-22: an edited audit event in the source stops the copy (the chain would not verify
    in the copy either); the SQLite destination stays without rows."""
    source = SqliteCa(ca_dir, [])
    db = sqlite3.connect(ca_dir / "tetra.db")
    try:
        with db:
            db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    finally:
        db.close()
    refused = tetra_here("db", "copy", "--from", source.url, "--to", f"sqlite:///{tmp_path / 'copy.db'}")
    assert_clean_error(refused, "the source's audit chain does not verify", "event 2")
    copy = sqlite3.connect(tmp_path / "copy.db")
    try:
        assert copy.execute("SELECT count(*) FROM audit_log").fetchone() == (0,)
    finally:
        copy.close()


def test_sqlite_to_sqlite_is_a_copy_too(ca_dir: Path, tmp_path: Path) -> None:
    """ST-22: any URL to any: a new SQLite file gets the schema and every row, and verifies."""
    copied = _ok("db", "copy", "--from", SqliteCa(ca_dir, []).url, "--to", f"sqlite:///{tmp_path / 'copy.db'}")
    assert "verified: every row equal" in copied
    verified = _ok(
        "audit",
        "verify",
        "--config",
        str(ca_dir / "tetra.toml"),
        env={"TETRA_DATABASE__URL": f"sqlite:///{tmp_path / 'copy.db'}"},
    )
    assert verified.startswith("audit log intact:")


def test_postgresql_back_to_sqlite_round_trips(ca_dir: Path, postgres_url: str, tmp_path: Path) -> None:
    """ST-22: any URL to any: PostgreSQL (read in one read-only REPEATABLE READ transaction) back
    to a new SQLite file gives the rows the original SQLite file has."""
    original = SqliteCa(ca_dir, [])
    _ok("db", "copy", "--from", original.url, "--to", postgres_url)
    back = tmp_path / "back.db"
    _ok("db", "copy", "--from", postgres_url, "--to", f"sqlite:///{back}")
    query = "SELECT id, serial, status, tbs, der, created_at FROM certificates ORDER BY id"
    db = sqlite3.connect(back)
    try:
        assert db.execute(query).fetchall() == _sqlite_rows(original, query)
    finally:
        db.close()
