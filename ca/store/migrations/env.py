"""Alembic environment: runs the revisions with a synchronous driver.

The revisions under versions/ create every table explicitly (the core's and each protocol's),
so what an upgrade creates never depends on what has been imported. ``target_metadata`` is
only what autogenerate compares a database with: `Base.metadata`, which holds the core's
tables (imported here) and every protocol's, declared on the same `Base` through
ca/state_store.py when the protocol is imported. ca/ never imports a protocol (import-linter,
pyproject.toml): whoever runs Alembic imports them first, as the server and `tetra` do through
protocols.registry, and tests/unit/server/test_schema.py checks the history against the lot.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from ca.store.tables import core_metadata

config = context.config
target_metadata = core_metadata()


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
