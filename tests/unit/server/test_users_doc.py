"""docs/users.md: its permission table is `ROLE_PERMISSIONS`, and every `tetra` command in it
parses, so the guide cannot drift from the code (OPS-01 for this page)."""

from __future__ import annotations

import contextlib
import io
import shlex
from pathlib import Path

from ca.operators.roles import ROLE_PERMISSIONS, Permission, Role
from server.cli import build_parser
from tests.doc_blocks import blocks

DOC = Path(__file__).resolve().parents[3] / "docs" / "users.md"


def test_the_permission_table_is_the_code_s() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `") and "." in line.split("|")[1]]
    header = next(line for line in DOC.read_text().splitlines() if line.startswith("| permission |"))
    roles = [Role(cell.strip()) for cell in header.strip("|").split("|")[1:]]
    table = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        table[Permission(cells[0].strip("`"))] = {role for role, cell in zip(roles, cells[1:], strict=True) if cell}
    assert set(roles) == set(Role) and set(table) == set(Permission)
    for permission, holders in table.items():
        assert holders == {role for role in Role if permission in ROLE_PERMISSIONS[role]}, permission


def test_every_command_parses() -> None:
    commands = [c for b in blocks(DOC) if b.language == "sh" for c in b.commands if c.startswith("tetra ")]
    assert len(commands) >= 12
    for command in commands:
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            try:
                args = build_parser().parse_args(shlex.split(command)[1:])
            except SystemExit:
                raise AssertionError(f"`{command}` does not parse: {errors.getvalue().strip()}") from None
        assert callable(args.func)
