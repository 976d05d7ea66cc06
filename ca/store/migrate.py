"""Schema migrations with Alembic: `tetra db upgrade`, and the start-up check that the schema is current."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from ca.errors import StoreUnavailable
from ca.store.db import Database, driver_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", driver_url(url, "thread").replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Bring the schema to the newest revision (idempotent). Returns the revision before and
    after, so the operator can be told whether tables were created, upgraded or already there."""
    try:
        before = stored_revision(url)
        command.upgrade(alembic_config(url), revision)
        return before, stored_revision(url)
    except StoreUnavailable:
        raise
    except Exception as exc:  # driver errors: unreachable database, permissions
        raise StoreUnavailable(f"database upgrade failed: {str(exc).splitlines()[0][:300]}") from exc


def stored_revision(url: str) -> str | None:
    """The schema revision the database records (None: no Tetra schema yet), read synchronously
    for the CLI, as Alembic itself connects."""
    engine = create_engine(driver_url(url, "thread"), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


async def current_revision(db: Database) -> str | None:
    def q(conn: Connection) -> str | None:
        return MigrationContext.configure(conn).get_current_revision()

    return await db.read(q)


async def require_current(db: Database) -> None:
    current = await current_revision(db)
    if current != head_revision():
        raise StoreUnavailable(
            f"database schema is at {current or 'nothing'}, this version needs {head_revision()}: "
            "run `tetra db upgrade`"
        )
