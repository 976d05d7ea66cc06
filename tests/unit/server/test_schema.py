"""The migration history and the tables the code declares agree, the core's and every protocol's.

The revisions under ca/store/migrations/versions/ create each table explicitly; the code declares
the same tables on one `Base.metadata`: the core in ca/, each protocol in its own store module,
registered when protocols.registry is imported (as the server and `tetra` do before migrating;
ca/ itself never imports a protocol). A table, column or index added on one side only, or a
protocol whose tables no longer reach the metadata, shows up here as a difference.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import protocols.registry  # noqa: F401  (every protocol's tables onto Base.metadata)
from ca.store.db import driver_url
from ca.store.migrate import head_revision
from ca.store.tables import core_metadata

ACME_TABLES = {"acme_accounts", "acme_orders", "acme_authzs", "acme_challenges", "acme_nonces", "acme_renew_now"}


def schema_differences(url: str) -> list[object]:
    """What autogenerate would write to bring the database at ``url`` to `Base.metadata`; asserts
    the database is at the newest revision and holds the ACME tables."""
    engine = create_engine(driver_url(url, "thread"))
    try:
        with engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == head_revision()
            assert ACME_TABLES <= set(inspect(conn).get_table_names())
            return list(compare_metadata(MigrationContext.configure(conn), core_metadata()))
    finally:
        engine.dispose()


def test_init_and_upgrade_create_the_declared_schema(db_url: str) -> None:
    """SQLite: the database `tetra init` made (server.demo.init_demo, the template CA);
    PostgreSQL: a fresh database brought to head by ca.store.migrate.upgrade."""
    assert schema_differences(db_url) == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_tetra_db_upgrade_creates_the_declared_schema(
    backend: str, ca_dir: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """`tetra db upgrade` on an empty database, as an operator runs it (a real process): it says it
    created the schema, and run again, that the schema was already current."""
    url = f"sqlite:///{tmp_path / 'empty.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")

    def db_upgrade() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server.cli", "db", "upgrade", "--config", str(ca_dir / "tetra.toml")],
            capture_output=True,
            text=True,
            env={**os.environ, "TETRA_DATABASE__URL": url},
            timeout=120,
        )

    head = head_revision()
    first = db_upgrade()
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"created the Tetra schema (revision {head})"
    assert schema_differences(url) == []
    again = db_upgrade()
    assert again.returncode == 0 and again.stdout.strip() == f"the schema is already current (revision {head})"
