"""The [scep] section: SCEP-05 (no challenge source, no start), static challenges, limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ca.errors import ConfigError
from ca.tomlread import Table
from protocols.scep.config import ScepConfig, parse_config


def _parse(data: dict[str, Any], base: Path = Path("/etc/tetra")) -> ScepConfig:
    return parse_config(Table(data, str(base / "tetra.toml")))


def test_a_profile_without_any_challenge_source_refuses_to_start() -> None:
    """SCEP-05: one_time_challenges off, no static challenge, no webhook: refused unless
    open_enrollment says so."""
    closed = {"profiles": {"device": {"one_time_challenges": False}}}
    with pytest.raises(ConfigError, match="open_enrollment"):
        _parse(closed)
    config = _parse({"profiles": {"device": {"one_time_challenges": False, "open_enrollment": True}}})
    assert config.settings("device").open_enrollment


def test_static_challenge_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-a-file-123\n")
    config = _parse({"profiles": {"device": {"challenge_file": "secret"}}}, tmp_path)
    assert config.settings("device").challenge == "from-a-file-123"


@pytest.mark.parametrize(
    "profile",
    [{"challenge": "short"}, {"challenge": "long-enough-1", "challenge_file": "x"}, {"challenge_file": "missing"}],
)
def test_bad_static_challenges(profile: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        _parse({"profiles": {"device": profile}}, tmp_path)


def test_limits_and_unknown_keys() -> None:
    with pytest.raises(ConfigError):
        _parse({"max_body": 100})
    with pytest.raises(ConfigError):
        _parse({"challenge_failures": 0})
    with pytest.raises(ConfigError):
        _parse({"profiles": {"device": {"legcy": True}}})
    defaults = _parse({})
    assert defaults.settings("any").one_time_challenges
