"""`tetra <protocol> <words...>`: the commands each protocol lists in its ProtocolSpec.cli.

The server owns the command line (--config, --operator, one-line errors, opening the CA); the
protocol owns what a command does, against the same ProtocolContext the server hands its
handlers. A protocol adds a command without touching server/.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from server.cli.common import Command, add_config_option, add_operator_option, on_ca

if TYPE_CHECKING:
    from ca.service import CertificateAuthority
    from protocols.base import CliCommand
    from server.cli.common import Subcommands
    from server.config import ServerConfig


def add_commands(sub: Subcommands) -> None:
    from protocols.registry import PROTOCOLS

    for name, spec in PROTOCOLS.items():
        if spec.cli:
            mount(sub.add_parser(name, help=spec.cli_help or f"{name} commands"), name, spec.cli)


def mount(parser: argparse.ArgumentParser, protocol: str, commands: Sequence[CliCommand]) -> None:
    """Make ``commands`` (their words, options, --config and --operator) subcommands of ``parser``."""
    _add_words(parser, protocol, commands, depth=0)


def _add_words(parser: argparse.ArgumentParser, protocol: str, commands: Sequence[CliCommand], depth: int) -> None:
    """One level of words below `tetra <protocol>`: a word that ends a command becomes its parser,
    a word shared by longer commands becomes a group whose help lists the words under it."""
    dest = "action" if depth == 0 else f"{commands[0].words[depth - 1]}_action"
    sub = parser.add_subparsers(dest=dest, required=True)
    by_word: dict[str, list[CliCommand]] = {}
    for command in commands:
        by_word.setdefault(command.words[depth], []).append(command)
    for word, members in by_word.items():
        ends_here = [c for c in members if len(c.words) == depth + 1]
        if ends_here:
            if len(members) > 1:
                words = " ".join(members[0].words[: depth + 1])
                raise ValueError(f"{protocol}: `{words}` is both a command and a group")
            _add_command(sub, word, protocol, ends_here[0])
        else:
            below = " | ".join(dict.fromkeys(c.words[depth + 1] for c in members))
            _add_words(sub.add_parser(word, help=below), protocol, members, depth + 1)


def _add_command(sub: Subcommands, word: str, protocol: str, command: CliCommand) -> None:
    parser = add_config_option(sub.add_parser(word, help=command.help))
    command.arguments(parser)
    add_operator_option(parser)
    parser.set_defaults(func=_runner(protocol, command))


def _runner(protocol: str, command: CliCommand) -> Command:
    """Run ``command`` against the context the server would hand ``protocol``. The revocation
    services are built as the server builds them but not started (starting the OCSP responder
    signs responder certificates); a command that needs one starts it."""

    @on_ca
    async def run(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
        from server.wiring import build_revocation, protocol_context

        revocation = build_revocation(ca, config)
        try:
            return await command.run(protocol_context(protocol, ca, config, revocation), args)
        finally:
            if revocation.ocsp is not None:
                await revocation.ocsp.close()

    return run
