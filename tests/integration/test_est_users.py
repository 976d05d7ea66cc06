"""`tetra est user add | list | remove`: a generated password is printed once and works, a user
bound to a label enrolls under its profile only, a removed user gets 401, and every mistake is one
line on stderr (no traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_here import tetra_here
from tests.integration.est_support import EstServer, curl, enroll_args, est_server, openssl_csr

pytestmark = pytest.mark.slow


@pytest.fixture
def server(ca_dir: Path, tmp_path: Path) -> Iterator[EstServer]:
    yield from est_server(ca_dir, tmp_path)


def _failing_cli(server: EstServer, *args: str) -> str:
    result = tetra_here(*args, "--config", str(server.config), env=server.extra_env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_user_lifecycle(server: EstServer, tmp_path: Path) -> None:
    """EST-16: generated password, label binding, removal."""
    out = server.cli("est", "user", "add", "bob", "--label", "iot")
    password = out.split("password:")[1].split()[0]
    assert len(password) >= 20
    assert "bob" in server.cli("est", "user", "list") and "device" in server.cli("est", "user", "list")
    _, csr = openssl_csr(tmp_path, "bob.example.com", sans="DNS:bob.example.com")
    args = enroll_args(csr, "-u", f"bob:{password}")
    assert curl(server, tmp_path, f"{server.url}/iot/simpleenroll", *args).status == 200
    elsewhere = curl(server, tmp_path, f"{server.url}/keygen/simpleenroll", *args)
    assert elsewhere.status == 403 and "profile device only" in elsewhere.text
    assert "removed" in server.cli("est", "user", "remove", "bob")
    assert "bob" not in server.cli("est", "user", "list")
    assert curl(server, tmp_path, f"{server.url}/iot/simpleenroll", *args).status == 401


def test_user_command_mistakes(server: EstServer) -> None:
    """EST-16: each mistake is one line on stderr."""
    assert "exists" in _failing_cli(server, "est", "user", "add", "alice")
    assert "no EST label" in _failing_cli(server, "est", "user", "add", "carol", "--label", "nosuch")
    assert "no EST user" in _failing_cli(server, "est", "user", "remove", "nobody")
    assert "without ':'" in _failing_cli(server, "est", "user", "add", "a:b")
