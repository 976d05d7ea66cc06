"""`tetra serve` with the management API on its public listeners, on free loopback ports, for
multi-process and fault tests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

from tests.operator_tokens import bearer, issue_token
from tests.tetra_process import TetraProcess, free_port

__all__ = ["ServerProcess", "free_port"]


class ServerProcess(TetraProcess):
    """One `tetra serve` on a given database; HTTP, HTTPS and (TetraProcess) the manage listener
    on free ports, the management API answering on the HTTP and HTTPS listeners too (`[manage]
    also_on`), so `base` + /api/v1 reaches it as the tests' other calls do."""

    def __init__(self, config: Path, db_url: str, log: Path, extra_env: dict[str, str] | None = None) -> None:
        self.db_url = db_url
        self.http_port = free_port()
        self.https_port = free_port()
        env = {
            "TETRA_DATABASE__URL": db_url,
            "TETRA_SERVER__HTTP": f"127.0.0.1:{self.http_port}",
            "TETRA_SERVER__HTTPS": f"127.0.0.1:{self.https_port}",
            "TETRA_SERVER__PROTOCOLS": "[]",
            "TETRA_MANAGE__ALSO_ON": '["http", "https"]',
            **(extra_env or {}),
        }
        super().__init__(config, env, log)
        self.base = f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout: float = 30) -> None:  # type: ignore[override]
        super().wait_ready(f"{self.base}/readyz", timeout)

    @cached_property
    def token(self) -> str:
        """An administrator's API token on this server's database, made on first use (once the
        server has migrated a fresh database); servers sharing a database accept each other's.
        Made on a thread of its own: async tests read it inside their running event loop."""
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(issue_token, self.db_url).result()

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)
