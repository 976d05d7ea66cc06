"""The `tetra` parser without running anything: where --config may stand, and how a protocol's
CliCommand words become nested subcommands."""

from __future__ import annotations

import argparse

import pytest

from protocols.base import CliCommand, ProtocolContext
from server.cli import build_parser
from server.cli.common import DEFAULT_CONFIG, resolve_config
from server.cli.protocol_commands import mount


def _parsed(*argv: str) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    resolve_config(parser, args)
    return args


@pytest.mark.parametrize(
    ("argv", "config"),
    [
        (("--config", "a.toml", "certs", "list"), "a.toml"),
        (("certs", "list", "--config", "b.toml"), "b.toml"),
        (("--config", "a.toml", "certs", "list", "--config", "b.toml"), "b.toml"),
        (("certs", "list"), DEFAULT_CONFIG),
        (("--config", "a.toml", "acme", "eab", "create"), "a.toml"),
        (("acme", "eab", "revoke", "kid", "--config", "b.toml"), "b.toml"),
        (("--config", "a.toml", "db", "upgrade", "--config", "b.toml"), "b.toml"),
    ],
)
def test_config_position(argv: tuple[str, ...], config: str) -> None:
    assert _parsed(*argv).config == config


def _size_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--size", type=int)


async def _noop(ctx: ProtocolContext[object], args: argparse.Namespace) -> int:
    return 0


def test_protocol_words_become_nested_subcommands_with_operator_and_config() -> None:
    parser = argparse.ArgumentParser(prog="tetra x")
    commands = (
        CliCommand(("keys", "create"), "make one", _noop, _size_option),
        CliCommand(("keys", "drop"), "drop one", _noop),
        CliCommand(("flush",), "flush all", _noop),
    )
    mount(parser, "x", commands)
    args = parser.parse_args(["keys", "create", "--size", "3", "--operator", "carol", "--config", "c.toml"])
    assert (args.action, args.keys_action, args.size) == ("keys", "create", 3)
    assert (args.operator, args.config) == ("carol", "c.toml")
    assert parser.parse_args(["flush"]).action == "flush"
    with pytest.raises(SystemExit):
        parser.parse_args(["keys"])  # a group alone is not a command


def test_a_word_that_is_both_a_command_and_a_group_is_refused() -> None:
    commands = (CliCommand(("keys",), "list", _noop), CliCommand(("keys", "drop"), "drop one", _noop))
    with pytest.raises(ValueError, match="both a command and a group"):
        mount(argparse.ArgumentParser(), "x", commands)
