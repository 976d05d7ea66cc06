"""What the management plane's tests check again and again: a problem document, the audit rows
a call wrote."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ca.service import CertificateAuthority
from ca.store.tables import audit_log


async def problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    """The RFC 9457 document of a refusal, checked to be one: its media type, its members, its type."""
    assert resp.status == status, (resp.status, await resp.text())
    assert resp.content_type == "application/problem+json", resp.content_type
    body: dict[str, Any] = await resp.json(content_type=None)
    assert set(body) == {"type", "title", "status", "detail"}, body
    assert body["type"] == f"urn:tetra:problem:{code}" and body["status"] == status, body
    return body


async def audit_rows(ca: CertificateAuthority, after: int = 0) -> list[Any]:
    """The audit events after sequence number ``after``, oldest first."""
    query = select(audit_log).where(audit_log.c.seq > after).order_by(audit_log.c.seq)
    return await ca.db.read(lambda conn: list(conn.execute(query)))


async def last_seq(ca: CertificateAuthority) -> int:
    return int(
        await ca.db.read(lambda conn: conn.execute(select(func.coalesce(func.max(audit_log.c.seq), 0))).scalar_one())
    )


def add_profile(ca_dir: Path, name: str, base: str = "tls-server", keygen: bool = False, **top: object) -> None:
    """A profile for a test: a copy of ``base`` with top-level keys set (approval, four_eyes,
    teams...), and with `keys.server_generation` if ``keygen``."""
    text = (ca_dir / "profiles" / f"{base}.toml").read_text()
    head, sep, tables = text.partition("\n[")
    lines = [line for line in head.splitlines() if line.split("=")[0].strip() not in top]
    lines += [f"{key} = {json.dumps(value)}" for key, value in top.items()]
    text = "\n".join(lines) + "\n" + sep.lstrip("\n") + tables
    if keygen:
        text = text.replace("[keys]\n", "[keys]\nserver_generation = true\n")
    (ca_dir / "profiles" / f"{name}.toml").write_text(text)
