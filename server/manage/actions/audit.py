"""The audit log as an auditor reads it: the events, filtered, and the hash chain's check.

The log is the CA's, not a team's: reading it needs audit.read, which only roles that see every
team hold. Reading changes nothing, so nothing here is itself audited.
"""

from __future__ import annotations

from ca.audit import AuditFilter, ChainReport, LoggedEvent
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.service import CertificateAuthority
from server.manage.actions.access import require


async def events(
    ca: CertificateAuthority,
    principal: Principal,
    flt: AuditFilter,
    *,
    after_seq: int | None,
    limit: int,
    newest_first: bool = False,
) -> list[LoggedEvent]:
    """The API reads in chain order after a cursor; the dashboard newest first, before one."""
    require(principal, Permission.AUDIT_READ)
    return await ca.audit.events(flt, after_seq=after_seq, limit=limit, newest_first=newest_first)


async def verify(ca: CertificateAuthority, principal: Principal) -> ChainReport:
    """Recompute every link (`tetra audit verify`): edited, deleted or inserted rows are named."""
    require(principal, Permission.AUDIT_READ)
    return await ca.audit.verify()
