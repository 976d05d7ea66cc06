"""`tetra serve` with the operator API on free loopback ports, for multi-process and fault tests."""

from __future__ import annotations

from pathlib import Path

from tests.tetra_process import TetraProcess, free_port

API_TOKEN = "test-api-token"

__all__ = ["API_TOKEN", "ServerProcess", "free_port"]


class ServerProcess(TetraProcess):
    """One `tetra serve` on a given database; HTTP and HTTPS on free ports, API token set."""

    def __init__(self, config: Path, db_url: str, log: Path, extra_env: dict[str, str] | None = None) -> None:
        self.http_port = free_port()
        self.https_port = free_port()
        env = {
            "TETRA_DATABASE__URL": db_url,
            "TETRA_SERVER__HTTP": f"127.0.0.1:{self.http_port}",
            "TETRA_SERVER__HTTPS": f"127.0.0.1:{self.https_port}",
            "TETRA_SERVER__PROTOCOLS": '["api"]',
            "TETRA_API_TOKEN": API_TOKEN,
            **(extra_env or {}),
        }
        super().__init__(config, env, log)
        self.base = f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout: float = 30) -> None:  # type: ignore[override]
        super().wait_ready(f"{self.base}/readyz", timeout)
