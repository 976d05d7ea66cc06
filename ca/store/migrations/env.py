"""Alembic environment: migrates Base.metadata (core and protocol tables) with a synchronous driver."""

from __future__ import annotations

import importlib

from alembic import context
from sqlalchemy import create_engine, pool

import ca.store.tables  # noqa: F401  (core tables)
from ca.store.tables import Base

# Protocol state lives on the same metadata; import what exists so autogenerate sees it.
for _module in (
    "ca.revocation.tables",
    "protocols.acme.store.tables",
    "protocols.est.state",
    "protocols.scep.state",
    "protocols.cmp.state",
):
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError:
        pass

config = context.config
target_metadata = Base.metadata


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
