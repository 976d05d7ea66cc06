"""Placeholder for the per-profile validation webhook (Intune model); brief B replaces this file.

The API is fixed so that the SCEP handlers can be written against it now: a profile with a
``webhook_url`` hands each enrolment's challenge and CSR to `WebhookClient.allows`, which returns
on yes and raises `WebhookRefused` otherwise. Until B's module lands every webhook refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ca.tomlread import Table


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    timeout: float = 5.0
    retries: int = 2
    ca_file: Path | None = None


@dataclass(frozen=True)
class WebhookQuery:
    profile: str
    transaction_id: str
    challenge: str
    csr_der: bytes
    subject: str
    sans: tuple[str, ...]


class WebhookRefused(Exception):
    """The webhook said no, timed out or was unreachable (str: why)."""


def parse_webhook(table: Table) -> WebhookSettings | None:
    """The webhook keys of a profile table; None when it names no webhook_url."""
    url = table.get("webhook_url", str, "")
    timeout = table.get("webhook_timeout", float, 5.0)
    retries = table.get("webhook_retries", int, 2)
    ca_file = table.get("webhook_ca_file", str, "")
    if not url:
        return None
    return WebhookSettings(url, timeout, retries, Path(ca_file) if ca_file else None)


class WebhookClient:
    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings

    async def allows(self, query: WebhookQuery) -> None:
        """Returns on yes; raises WebhookRefused otherwise (always, in this placeholder)."""
        raise WebhookRefused("webhook not built yet")

    async def close(self) -> None:
        """Nothing to release in the placeholder."""
