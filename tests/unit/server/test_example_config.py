"""conf/tetra.example.toml claims to list every key: checked against the parsers themselves, so
the example cannot drift from what the server reads. Every key a parser asks for while loading a
config (the server's own sections and every registered protocol's) must be written in the example
under its section, set or commented out; and the example itself must load."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from ca import tomlread
from ca.tomlread import Table
from server.wiring import read_config

EXAMPLE = Path(__file__).resolve().parents[3] / "conf" / "tetra.example.toml"
# Tables named by the operator (a signer, an issuer, an RA, a profile, an issuer's chains): the
# example shows one of each, under the name it chose.
NAMED = re.compile(
    r"^(signers|issuers|ra|acme\.profiles|acme\.alternate_chains|est\.profiles|scep\.profiles|discovery\.schedules)\.[^.]+\."
)


def documented(text: str) -> set[str]:
    """Dotted keys written in the example, as `key = ...` under a `[section]` header; both may be
    commented out (an alternative or an optional table)."""
    keys: set[str] = set()
    section = ""
    for line in text.splitlines():
        header = re.match(r"^#?\s*\[([\w.-]+)\]", line)
        if header:
            section = header.group(1)
            parts = section.split(".")
            keys.update(".".join(parts[: i + 1]) for i in range(len(parts)))  # [a.b.c] writes a, a.b
            continue
        key = re.match(r"^#?\s*([a-z_]+)\s*=", line)
        if key:
            keys.add(f"{section}.{key.group(1)}" if section else key.group(1))
    return keys


def keys_the_parsers_read(config: Path) -> set[str]:
    asked: set[str] = set()
    plain_get = Table.get

    def recording_get(self: Table, key: str, kind: Any, default: Any = tomlread._MISSING) -> Any:
        asked.add(self.where(key).split(": ", 1)[1])
        if default is tomlread._MISSING:
            return plain_get(self, key, kind)
        return plain_get(self, key, kind, default)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Table, "get", recording_get)
        read_config(config, environ={})
    return asked


def test_the_example_names_every_key_the_parsers_read(ca_dir: Path) -> None:
    asked = keys_the_parsers_read(ca_dir / "tetra.toml")
    written = documented(EXAMPLE.read_text())
    missing = sorted(k for k in asked if k not in written and not NAMED.match(k))
    assert missing == []
    assert "crl.batch_delay" in asked and "server.workers" in asked  # the recorder sees the parsers


def test_the_example_loads(ca_dir: Path, tmp_path: Path) -> None:
    """Copied beside the demo's files (its relative paths point at them), it loads as written."""
    shutil.copy(EXAMPLE, ca_dir / "example.toml")
    config = read_config(ca_dir / "example.toml", environ={})
    assert config.workers == 1 and config.http and config.http.port == 8080
