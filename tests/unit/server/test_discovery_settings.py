"""The [discovery] section: defaults, schedules, and one-line errors for what cannot be meant; and
docs/discovery.md names every finding code a scan can record."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import Any

import pytest

from ca.errors import ConfigError
from ca.tomlread import Table
from server.discovery.findings import CODES
from server.discovery.settings import DiscoverySettings, parse_discovery

DOC = Path(__file__).resolve().parents[3] / "docs" / "discovery.md"


def parse(data: dict[str, Any]) -> DiscoverySettings:
    return parse_discovery(Table(data, "tetra.toml", "discovery."), Path("/etc/tetra"))


def test_defaults_and_schedules() -> None:
    assert parse({}) == DiscoverySettings()
    settings = parse(
        {
            "allow": ["10.0.0.0/8", "2001:db8::/32"],
            "passphrases_file": "p12.txt",
            "schedules": {
                "dc": {"targets": ["10.1.0.0/24"], "ports": [443, 25], "every": "24h"},
                "disk": {"paths": ["certs"], "every": "6h"},
            },
        }
    )
    assert settings.allow == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
    assert settings.passphrases_file == Path("/etc/tetra/p12.txt")
    dc, disk = settings.schedules
    assert (dc.name, dc.targets, dc.ports, dc.every) == ("dc", ("10.1.0.0/24",), (443, 25), dt.timedelta(hours=24))
    assert disk.paths == (Path("/etc/tetra/certs"),) and disk.every == dt.timedelta(hours=6)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"max_endpoints": 0}, "discovery.max_endpoints: must be at least 1"),
        ({"timeout_seconds": 0}, "discovery.timeout_seconds"),
        ({"allow": ["10.0.0.0/33"]}, "not an address or CIDR range"),
        ({"ports": [0]}, "port numbers from 1 to 65535"),
        ({"schedules": {"x": {"targets": ["a"], "paths": ["b"], "every": "1h"}}}, "either targets"),
        ({"schedules": {"x": {"every": "1h"}}}, "either targets"),
        ({"schedules": {"x": {"targets": ["a"], "every": "10s"}}}, "at least a minute"),
        ({"schedules": {"x": {"targets": ["a"], "every": "soon"}}}, "not a duration"),
        ({"ports_list": [443]}, "ports_list"),
    ],
)
def test_nonsense_is_one_line_naming_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(data)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_guide_names_every_finding_code() -> None:
    text = DOC.read_text()
    for code in [*CODES, "unreadable"]:
        assert f"| `{code}` |" in text, code
