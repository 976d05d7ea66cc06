"""The management plane under test: the whole app, served in-process through a listener named
as run_server names it (tests/manage_server.py), on the demo CA `tetra init` writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from ca.service import CertificateAuthority
from server.app import CA, build_app
from server.config import ServerConfig
from server.wiring import read_config
from tests.conftest import lint_everything_issued
from tests.manage_server import ListenerTestServer

Client = TestClient[Any, Any]
Serve = Callable[..., Awaitable[tuple[Client, CertificateAuthority]]]


def manage_config(ca_dir: Path, db_url: str, **environ: str) -> ServerConfig:
    return read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": db_url, **environ})


@pytest.fixture
def sqlite_url(ca_dir: Path) -> str:
    return f"sqlite:///{ca_dir / 'tetra.db'}"


@pytest.fixture
async def serve(aiohttp_client: Any) -> AsyncIterator[Serve]:
    """serve(config, listener="manage") -> (client, the served app's CA). Afterwards every
    certificate the served CAs issued is linted, as the `ca` fixture does."""
    served: list[CertificateAuthority] = []

    async def start(config: ServerConfig, listener: str = "manage") -> tuple[Client, CertificateAuthority]:
        app = build_app(config)
        client: Client = await aiohttp_client(ListenerTestServer(app, listener))
        served.append(app[CA])
        return client, served[-1]

    yield start
    for authority in served:  # before aiohttp_client closes the apps (and their CAs)
        await lint_everything_issued(authority)
