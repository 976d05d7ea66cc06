"""Run `tetra serve` as a real process on free loopback ports, for multi-process and fault tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

API_TOKEN = "test-api-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One `tetra serve`; HTTP on a free port (HTTPS too), API token set, output kept in a log file."""

    def __init__(self, config: Path, db_url: str, log: Path, extra_env: dict[str, str] | None = None) -> None:
        self.http_port = free_port()
        self.https_port = free_port()
        self.log_path = log
        env = {
            **os.environ,
            "TETRA_DATABASE__URL": db_url,
            "TETRA_SERVER__HTTP": f"127.0.0.1:{self.http_port}",
            "TETRA_SERVER__HTTPS": f"127.0.0.1:{self.https_port}",
            "TETRA_SERVER__PROTOCOLS": '["api"]',
            "TETRA_API_TOKEN": API_TOKEN,
            **(extra_env or {}),
        }
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.base = f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tetra serve exited: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"tetra serve not ready: {self.log_path.read_text()}")

    def kill(self) -> None:
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
        self._log.close()
