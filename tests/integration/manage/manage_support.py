"""What the management plane's tests check again and again: a problem document, the audit rows
a call wrote."""

from __future__ import annotations

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
