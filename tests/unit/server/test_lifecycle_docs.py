"""Every `tetra` command in docs/inventory.md and docs/discovery.md is one the parser accepts,
with the options written, so the guides cannot drift from the commands they describe."""

from __future__ import annotations

import contextlib
import io
import shlex
from pathlib import Path

import pytest

from server.cli import build_parser
from tests.doc_blocks import blocks

DOCS = Path(__file__).resolve().parents[3] / "docs"
COMMANDS = [
    (path.name, command)
    for path in (DOCS / "inventory.md", DOCS / "discovery.md")
    for block in blocks(path)
    if block.language == "sh"
    for command in block.commands
    if command.startswith("tetra ")
]


def test_the_guides_have_commands() -> None:
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize(("doc", "command"), COMMANDS)
def test_a_guide_command_parses(doc: str, command: str) -> None:
    words = shlex.split(command.partition(" > ")[0], comments=True)  # without a redirection
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        try:
            args = build_parser().parse_args(words[1:])
        except SystemExit:
            pytest.fail(f"{doc}: `{command}` does not parse: {errors.getvalue().strip()}")
    assert callable(args.func)
