"""The readiness checks: a durable write and an audit row the store takes, and every signer
able to sign now. `/readyz` answers them as JSON, the dashboard's health page shows them."""

from __future__ import annotations

import asyncio

from ca.errors import CAError
from ca.service import CertificateAuthority

SIGNER_TIMEOUT = 5  # seconds a signer (an HSM session, say) may take to prove it can sign


async def readiness_checks(ca: CertificateAuthority) -> dict[str, str]:
    """Check name ("database", "signer:<name>") -> "ok" or what is wrong."""
    checks: dict[str, str] = {}
    try:
        await ca.audit.probe()
        checks["database"] = "ok"
    except CAError as exc:
        checks["database"] = exc.detail
    signers = {id(i.signer): i.signer for i in ca.issuers.values()}
    signers.update({id(r.signer): r.signer for r in ca.ras.values()})
    for signer in signers.values():
        try:
            await asyncio.wait_for(signer.check(), SIGNER_TIMEOUT)
            checks[f"signer:{signer.name}"] = "ok"
        except (TimeoutError, CAError) as exc:
            checks[f"signer:{signer.name}"] = getattr(exc, "detail", "timed out")
    return checks
