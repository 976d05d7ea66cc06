"""`tetra ARGS` run inside the test process: the same `server.cli.main` a `tetra` process runs,
with its own stdin, stdout, stderr, environment and logging, and the same result a
subprocess.run would give (exit code, text output).

A `tetra` process costs 1.5-3 s of interpreter start and imports (SQLAlchemy, the protocol
registry, pkilint); after the first call here, a one-shot command costs what its work costs.
Tests whose point is the process boundary (serve, signals, a tty, two processes at once, the
README walk-through) keep starting real processes (tests/integration/test_cli.py `tetra`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator

# Loggers main() sets a level on (server/logs.py setup_command_logging); put back afterwards so
# one command's logging set-up does not outlive it, as it does not outlive a process.
_LOGGERS_MAIN_SETS = ("", "alembic", "tetra.activity")


def tetra_here(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """What `subprocess.run([tetra, *args], capture_output=True, text=True)` returns, without the
    process. An exception main() lets through is a traceback on stderr and exit code 1, as the
    interpreter would report it, so "no traceback" assertions keep their meaning.

    main() runs in a thread of its own, as a process would run beside the test: its asyncio.run
    needs a thread without a running event loop (an async test's has one), and it starts with
    no context variables of the test's. The caller waits for it, as for subprocess.run."""
    if env and "TETRA_CONFIG" in env:
        # server/cli/common.py reads it once, at import: only a new process sees a new value.
        raise ValueError("TETRA_CONFIG is read at import: run this command as a process")
    from server.cli import main

    out, err = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    stdin_stream = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
    codes: list[int] = []

    def command() -> None:
        try:
            codes.append(main(list(args)))
        except SystemExit as exit_:  # argparse: usage errors (2) and --help/--version (0)
            codes.append(_exit_code(exit_, stderr))
        except Exception:
            traceback.print_exc(file=stderr)
            codes.append(1)

    with _environment(env or {}), _own_logging(), _streams(stdin_stream, stdout, stderr):
        thread = threading.Thread(target=command, name=f"tetra {' '.join(args[:2])}")
        thread.start()
        thread.join()
    (code,) = codes
    stdout.flush()
    stderr.flush()
    return subprocess.CompletedProcess(
        ["tetra", *args], code, out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8")
    )


def _exit_code(exit_: SystemExit, stderr: io.TextIOWrapper) -> int:
    if exit_.code is None:
        return 0
    if isinstance(exit_.code, int):
        return exit_.code
    print(exit_.code, file=stderr)  # sys.exit("message"): printed, status 1
    return 1


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def _own_logging() -> Iterator[None]:
    """A root logger without pytest's capture handlers, as a new process has: main() then installs
    its own handler on the (redirected) stderr and its activity lines reach the output."""
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {name: logging.getLogger(name).level for name in _LOGGERS_MAIN_SETS}
    root.handlers[:] = []
    try:
        yield
    finally:
        root.handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _streams(stdin: io.TextIOWrapper, stdout: io.TextIOWrapper, stderr: io.TextIOWrapper) -> Iterator[None]:
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
    try:
        yield
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved
