"""The fenced code blocks of a Markdown file, each with the heading it stands under, so a
test can run (or check) every command a document tells a reader to type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    heading: str  # the nearest heading above the block, without the #s
    language: str  # the fence's info string: "sh", or "" for a synopsis
    text: str
    line: int  # 1-based line of the opening fence, for messages

    @property
    def commands(self) -> list[str]:
        """The block's commands, one per logical line (a trailing backslash continues it);
        comments and blank lines dropped."""
        out: list[str] = []
        pending = ""
        for raw in self.text.splitlines():
            if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
                continue
            pending += raw.rstrip()[:-1] + " " if raw.rstrip().endswith("\\") else raw
            if not raw.rstrip().endswith("\\"):
                out.append(" ".join(pending.split()))
                pending = ""
        return out


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    heading = ""
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            heading = line.lstrip("#").strip()
        opening = FENCE.match(line)
        if opening:
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            found.append(Block(heading, opening.group(1), "\n".join(body) + "\n", start + 1))
        i += 1
    return found
