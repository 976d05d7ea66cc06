"""The demo's `[acme.validation] demo_loopback_domains` (OPS-20): names under a listed
special-use domain resolve to 127.0.0.1 with no DNS query and have no CAA; every other name
still goes to DNS; a domain that is not special-use (RFC 6761) is refused when the config is
read, so a production name can never be pointed at loopback by this setting."""

from __future__ import annotations

import pytest

from ca.errors import ConfigError
from ca.tomlread import Table
from protocols.acme.config import parse_config
from protocols.acme.va.errors import ValidationError
from protocols.acme.va.resolve import Resolver


def _domains(value: object) -> tuple[str, ...]:
    table = Table({"validation": {"demo_loopback_domains": value}}, "t.toml", "acme.")
    return parse_config(table).validation.demo_loopback_domains


def test_special_use_domains_are_accepted_and_normalised() -> None:
    assert _domains(["Example.TEST.", "demo.localhost", "x.invalid", "example"]) == (
        "example.test",
        "demo.localhost",
        "x.invalid",
        "example",
    )
    assert _domains([]) == ()


@pytest.mark.parametrize("bad", [["example.com"], ["test.example.org"], ["com"], ["example.test", "corp.internal"]])
def test_other_domains_are_refused(bad: list[str]) -> None:
    with pytest.raises(ConfigError, match=r"acme\.validation\.demo_loopback_domains: .*special-use"):
        _domains(bad)


def test_a_list_of_strings_is_required() -> None:
    with pytest.raises(ConfigError, match="demo_loopback_domains"):
        _domains("example.test")


async def test_listed_names_resolve_to_loopback_without_dns() -> None:
    # A resolver pointed at a closed port: any query would fail, so an answer proves none was made.
    resolver = Resolver(("127.0.0.1", 9), 0.5, ("example.test",))
    assert await resolver.addresses("www.example.test") == ["127.0.0.1"]
    assert await resolver.addresses("EXAMPLE.test.") == ["127.0.0.1"]
    assert await resolver.caa("deep.www.example.test") is None


async def test_names_outside_the_list_still_ask_dns() -> None:
    resolver = Resolver(("127.0.0.1", 9), 0.5, ("example.test",))
    for name in ("www.notexample.test", "example.test.evil.com"):
        with pytest.raises(ValidationError, match="DNS problem"):
            await resolver.addresses(name)
