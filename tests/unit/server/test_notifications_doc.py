"""docs/notifications.md as a reader uses it: its config example loads, its receiver's Python
verifies what Tetra signs (and refuses a wrong secret, a changed body, an old timestamp; CLM-04),
and every command it lists is one `tetra` accepts."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ca.notices.settings import parse_notifications
from ca.tomlread import Table
from server.cli import build_parser
from server.notify.webhook import signature_header
from tests.doc_blocks import blocks

GUIDE = Path(__file__).resolve().parents[3] / "docs" / "notifications.md"


def _block(language: str, heading: str) -> str:
    found = [b.text for b in blocks(GUIDE) if b.language == language and b.heading == heading]
    assert len(found) == 1, (language, heading)
    return found[0]


def test_the_config_example_loads() -> None:
    data = tomllib.loads(_block("toml", "Configuration"))
    settings = parse_notifications(Table(data["notifications"], str(GUIDE), "notifications."))
    assert settings.enabled and settings.teams["web"].webhooks == ("chat",)
    assert settings.smtp is not None and settings.smtp.password_file.endswith("secrets/smtp-password")
    assert settings.teams["web"].approvers_email == ("web-ra@example.com",)
    assert settings.approvals.escalate_after.total_seconds() == 4 * 3600
    assert settings.approvals.escalate_email == ("pki-lead@example.com",)


def test_the_receiver_code_verifies_what_tetra_signs() -> None:
    namespace: dict[str, Any] = {}
    exec(_block("python", "Receiving webhooks"), namespace)  # the reader's code, as written
    verify: Callable[[bytes, str, bytes], bool] = namespace["verify"]
    body = b'{"event": "certificate.expiring"}'
    header = signature_header(b"secret", body, int(time.time()))
    assert verify(b"secret", header, body)
    assert not verify(b"other secret", header, body)
    assert not verify(b"secret", header, body + b" ")
    assert not verify(b"secret", signature_header(b"secret", body, int(time.time()) - 301), body)


def test_the_commands_exist() -> None:
    parser = build_parser()
    for line in _block("", "Commands").splitlines():
        words = line.split("#")[0].split()
        args = [w for w in words[1:] if w not in ("ADDRESS", "NAME")]
        if "--email" in args:
            args.append("a@example.com")
        if "--webhook" in args:
            args.append("chat")
        assert parser.parse_args(args).func is not None, line
