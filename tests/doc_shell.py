"""A terminal for running a document's command blocks as a reader would paste them.

One bash process per block (`set -euo pipefail`), run in a chosen directory with a chosen
environment; what a block sets up for the blocks after it (`. .venv/bin/activate`,
`export NAME=...`, `cd DIR`) is replayed before each later block, as the reader's shell
would remember it. Used by the README walk-through and by the guides' own tests.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.doc_blocks import Block

CARRIED = (". ", "source ", "export ", "cd ")


class ShellSession:
    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.carried: list[str] = []

    def sh(self, script: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the text with bash after what earlier blocks left in the shell."""
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", "\n".join([*self.carried, script])],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_ok(self, script: str, timeout: float = 300) -> str:
        """Run a block that must succeed; return what it printed (stdout, then stderr)."""
        done = self.sh(script, timeout)
        assert done.returncode == 0, f"{script}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        self.carried += [c for c in Block("", "sh", script, 0).commands if c.startswith(CARRIED)]
        return done.stdout + done.stderr
