"""The [manage] section and what replaced [api]: each mistake is one error naming the key, and
the demo's plane is on its own loopback listener, listed among the endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from ca.errors import ConfigError
from server.app import endpoint_lines
from server.wiring import read_config


def test_demo_plane_is_on_its_own_loopback_listener(ca_dir: Path) -> None:
    config = read_config(ca_dir / "tetra.toml", environ={})
    assert config.manage.listen == ("127.0.0.1", 8444) and config.manage.also_on == ()
    assert config.manage.listeners == frozenset({"manage"}) and config.manage.max_body == 128 * 1024
    assert "  https://127.0.0.1:8444/api/v1/  (management API, manage listener)" in endpoint_lines(config)
    assert not any("8080/api" in line or "8443/api" in line for line in endpoint_lines(config))
    off = read_config(ca_dir / "tetra.toml", environ={"TETRA_MANAGE__LISTEN": '""'})
    assert not off.manage.enabled and not any("/api/v1" in line for line in endpoint_lines(off))
    also = read_config(ca_dir / "tetra.toml", environ={"TETRA_MANAGE__ALSO_ON": '["http"]'})
    assert also.manage.listeners == frozenset({"manage", "http"})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TETRA_MANAGE__ALSO_ON": '["ftp"]'}, "manage.also_on: unknown listener 'ftp'"),
        (
            {"TETRA_MANAGE__ALSO_ON": '["https"]', "TETRA_SERVER__HTTPS": '""'},
            "manage.also_on: the https listener is not configured ([server] https)",
        ),
        ({"TETRA_MANAGE__LISTEN": "localhost"}, "manage.listen: expected HOST:PORT"),
        ({"TETRA_MANAGE__MAX_BODY": "10"}, "manage.max_body: must be between 1024 and 16777216 bytes"),
        ({"TETRA_MANAGE__TOKEN": "x"}, "manage.token: unknown key"),
        ({"TETRA_SERVER__PROTOCOLS": '["api"]'}, "the operator API is now the management plane"),
        ({"TETRA_API__TOKEN_ENV": "X"}, "[api] is replaced by [manage]"),
    ],
)
def test_manage_mistakes_are_one_error(ca_dir: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        read_config(ca_dir / "tetra.toml", environ=environ)
    assert message in str(err.value)
