"""Shared fixtures: a demo CA directory per test, on SQLite or on the local PostgreSQL."""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import os
import secrets
import shutil
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ca.service import CertificateAuthority
from ca.store.migrate import upgrade
from server.config import Listen, ServerConfig
from server.wiring import build_ca, read_config

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("TETRA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PUBLIC_URL = "http://pki.example.com"  # what certificates carry; lints clean under the CA/B Forum rules


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile the project's sources once, before any test starts a `tetra` process.

    Where PYTHONDONTWRITEBYTECODE is set (as in some CI images and containers) no interpreter
    writes __pycache__, so each `tetra` process the tests start compiled some 300 modules from
    source again: about 0.3 s of CPU each. It still reads .pyc files that exist, so writing them
    once here (compileall writes them whatever the variable says; up-to-date ones are skipped,
    and both xdist workers may do it at once: files are replaced atomically) spares every process.
    """
    if sys.flags.dont_write_bytecode:
        for package in ("ca", "protocols", "server", "tests", "interop", "bench"):
            if (REPO / package).is_dir():
                compileall.compile_dir(REPO / package, quiet=1, workers=1)


def _pg_exec(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def template_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo CA made by `tetra init`'s own code, copied for each test."""
    from server.demo import init_demo

    directory = tmp_path_factory.mktemp("template") / "ca"
    asyncio.run(
        init_demo(
            directory,
            http=Listen("127.0.0.1", 8080),
            https=Listen("127.0.0.1", 8443),
            hostnames=["localhost", "127.0.0.1"],
            protocols=[],
            http_url=PUBLIC_URL,
        )
    )
    return directory


@pytest.fixture
def ca_dir(template_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ca"
    shutil.copytree(template_dir, target)
    return target


@contextlib.contextmanager
def fresh_postgres_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database's URL, dropped afterwards: empty, or a copy of ``template``
    (skips the test without a server, except in CI)."""
    name = f"tetra_test_{secrets.token_hex(6)}"
    copy_of = f' TEMPLATE "{template}"' if template else ""
    try:
        _pg_exec(f'CREATE DATABASE "{name}"{copy_of}')
    except Exception as exc:  # pragma: no cover - only without a server
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_template() -> Iterator[str]:
    """The name of a database at the newest schema, migrated once per test process: a test that
    wants a migrated database gets a copy (CREATE DATABASE ... TEMPLATE copies its files), which
    costs a fraction of running every migration again. One per process, as PostgreSQL refuses
    to copy a template that another session is copying at the same moment."""
    with fresh_postgres_database() as url:
        upgrade(url)
        yield url.rsplit("/", 1)[1]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def migrated_postgres_url(migrated_template: str) -> Iterator[str]:
    """A fresh PostgreSQL database at the newest schema, for one test, dropped afterwards."""
    with fresh_postgres_database(migrated_template) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, ca_dir: Path) -> str:
    """The store under test: the copied SQLite file, or a fresh, migrated PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{ca_dir / 'tetra.db'}"
    url: str = request.getfixturevalue("migrated_postgres_url")
    return url


@pytest.fixture(params=["async", "thread"])
def db_mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(ca_dir: Path, db_url: str) -> ServerConfig:
    return read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": db_url})


@pytest.fixture
async def ca(config: ServerConfig) -> AsyncIterator[CertificateAuthority]:
    """The CA under test. Afterwards every certificate it issued is linted (docs/reliability.md,
    Conventions, "linted": every artifact a test produces passes pkilint): PKIX for all, CA/B Forum for tls-server."""
    authority = await build_ca(config)
    try:
        yield authority
        await lint_everything_issued(authority)
    finally:
        await authority.close()


async def lint_everything_issued(authority: CertificateAuthority) -> None:
    from ca.store.repositories import CertificateFilter
    from tests.pkilint_check import assert_certificate_lints_clean

    try:
        records = await authority.certificates.list(CertificateFilter(limit=100_000))
    except Exception:
        return  # tests that break the store on purpose have nothing to lint
    for record in records:
        # The demo's own HTTPS certificate names "localhost", a single-label name that
        # pkilint's PKIX lint calls invalid syntax; test_cli checks it has no other finding.
        if record.der is None or record.profile == "tetra-service-tls":
            continue
        assert_certificate_lints_clean(record.der, "pkix")
        if record.profile == "tls-server":
            assert_certificate_lints_clean(record.der, "cabf-serverauth")
