"""Schema migrations with Alembic: `tetra db upgrade`, and the start-up check that the schema is current."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from ca.errors import StoreUnavailable
from ca.store.db import Database, driver_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", driver_url(url, "thread").replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to the newest revision (idempotent)."""
    try:
        command.upgrade(alembic_config(url), revision)
    except StoreUnavailable:
        raise
    except Exception as exc:  # driver errors: unreachable database, permissions
        raise StoreUnavailable(f"database upgrade failed: {str(exc).splitlines()[0][:300]}") from exc


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
