"""`tetra init` and `tetra serve` as real child processes on free loopback ports: the one way the
integration, multi-process and interop tests start a server."""

from __future__ import annotations

import os
import random
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

_EPHEMERAL = (32768, 60999)  # Linux's default ip_local_port_range
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, for a server the test is about to start.

    Chosen outside the ephemeral range: a port the kernel hands out for bind(("", 0)) can be
    taken by any outgoing connection (a database client, curl) between this check and the
    server's own bind, which made a server start fail now and then with "address already in
    use". Never the same port twice in one run, so a server's two listeners cannot collide.
    """
    low, high = _ephemeral_range()
    candidates = [p for p in range(20000, 65536) if not low <= p <= high and p not in _handed_out]
    for port in random.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port from 20000 up outside the ephemeral range")


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return _EPHEMERAL


def tetra_command() -> list[str]:
    """The CLI of the interpreter running the tests (so PYTHONPATH and the venv carry over)."""
    return [sys.executable, "-m", "server.cli"]


def init_ca(directory: Path, http_port: int, https_port: int) -> None:
    """A fresh demo CA (`tetra init`) whose listeners are the given loopback ports."""
    subprocess.run(
        [
            *tetra_command(),
            "init",
            "--dir",
            str(directory),
            "--http",
            f"127.0.0.1:{http_port}",
            "--https",
            f"127.0.0.1:{https_port}",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


class TetraProcess:
    """One `tetra serve --config CONFIG` with extra environment, its output kept in a log file."""

    def __init__(self, config: Path, env: dict[str, str], log: Path) -> None:
        self.config = config
        # The demo config's management listener is 127.0.0.1:8444: a free port instead, so that
        # servers of tests running side by side do not fight over it (a test may set its own).
        self.manage_port = free_port()
        self.extra_env = {"TETRA_MANAGE__LISTEN": f"127.0.0.1:{self.manage_port}", **env}
        self.env = {**os.environ, **self.extra_env}
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [*tetra_command(), "serve", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
        )

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_ready(self, url: str, timeout: float = 60, context: ssl.SSLContext | None = None) -> None:
        """Until `url` answers 200; fails at once, with the log, if the server exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tetra serve exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"tetra serve not ready in {timeout:.0f} s: {self.log_tail()}")

    def cli(self, *args: str) -> str:
        """Another `tetra` command on the same config and environment; its stdout. It runs in the
        test's process (tests/cli_here.py), beside the server's, as an operator's would."""
        from tests.cli_here import tetra_here

        result = tetra_here(*args, "--config", str(self.config), env=self.extra_env)
        if result.returncode != 0:
            raise AssertionError(f"tetra {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        self.proc.kill()
        self.proc.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
