"""Whether a CA generation may be revoked, asked before anything is opened or changed: by
`tetra ca revoke` (server/cli/ca_revoke.py) and the management API's POST /cas/{name}/revoke
(server/manage/actions/cas.py), in the same words.

Refused: a name the registry does not hold, a root (nothing above it revokes it), one already
revoked or still pending, and, unless forced, the generation profiles issue from now (its CA
would have none: revoking an active generation stops issuance, it does not revive the one
before).
"""

from __future__ import annotations

from ca.authorities.lineage import families, state_of
from ca.authorities.model import Authority, Kind, State
from ca.errors import BadRequest
from ca.service import CertificateAuthority


def revocable(ca: CertificateAuthority, name: str, *, force: bool) -> Authority:
    """The generation ``name``, if it may be revoked; else BadRequest saying why."""
    record = ca.authorities.get(name)
    if record is None:
        names = ", ".join(sorted(a.name for a in ca.authorities.values() if a.kind is Kind.ISSUING))
        raise BadRequest(f"no CA generation named {name!r} in the registry (issuing CAs: {names or 'none'})")
    if record.kind is Kind.ROOT:
        raise BadRequest(f"{record.name} is a root: nothing above it revokes it; remove it from the trust stores")
    if record.revoked_at is not None:
        raise BadRequest(
            f"{record.name} is already revoked ({record.revocation_reason}, {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC)"
        )
    if record.der is None:
        raise BadRequest(f"{record.name} has no certificate yet: there is nothing to revoke")
    if not force:
        _refuse_last_active(ca, record)
    return record


def signed_by_our_root(ca: CertificateAuthority, record: Authority) -> Authority | None:
    """The root of this CA that signed ``record`` (its ARL and OCSP answers must be signed again,
    with that root's offline key), or None for a parent outside this CA."""
    parent = ca.authorities.get(record.parent) if record.parent else None
    if parent is not None and parent.kind is Kind.ROOT and parent.der is not None:
        return parent
    return None


def _refuse_last_active(ca: CertificateAuthority, record: Authority) -> None:
    family = families(ca.authorities.values()).get(record.family, [record])
    if state_of(record, family, ca.clock.now()) is not State.ACTIVE:
        return
    users = sorted(
        p.name for p in ca.profiles.values() if (p.issuer or ca.default_issuer) in (record.family, record.name)
    )
    if users:
        raise BadRequest(
            f"{record.name} is the generation CA {record.family} issues from now, for profiles "
            f"{', '.join(users)}: revoking it stops their issuance until another generation is "
            "activated; activate one first, or force it (--force, or force in the API)"
        )
