"""The CA hierarchy as an operator sees and steers it through the management plane: every
generation with its state (what `tetra ca list` prints, server/cli/ca_status.py), one
generation in detail (`tetra ca show`), and activating a staged generation (`tetra ca
activate`, through the same ca/authorities/activation.py).

Revoking a generation is here only when a parent outside this CA signed it: then only the
registry changes (`tetra ca revoke` does the same). One that this CA's own root signed needs
that root's ARL and OCSP answers signed again with the root's key, which is offline (a file or
a token the operator brings to `tetra ca revoke --parent-key`); rollover signs with it too and
writes a new private key to disk. Neither belongs behind a bearer token: they stay commands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding

from ca.authorities.activation import ActivationConflict, schedule_activation
from ca.authorities.store import AuthorityStore
from ca.hierarchy import fingerprint_sha256
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.revocation.reasons import parse_reason
from ca.service import CertificateAuthority
from server.ca_revocation_checks import revocable, signed_by_our_root
from server.cli.ca_status import CaLine, ca_lines, short_lived_warnings
from server.config import ServerConfig
from server.manage.actions.access import require
from server.manage.actions.errors import Conflict, NotVisible

WHAT = "CA"


@dataclass(frozen=True)
class Hierarchy:
    cas: list[CaLine]
    warnings: list[str]  # CAL-03: CAs that end before the leaves they would issue


@dataclass(frozen=True)
class Revoked:
    name: str
    reason: str
    at: dt.datetime
    serial: str  # hexadecimal: the serial its (outside) issuer must revoke
    issuer: str  # that issuer's name, RFC 4514


@dataclass(frozen=True)
class CaDetail:
    line: CaLine
    serial: str  # hexadecimal
    sha256: str
    pem: str


async def hierarchy(ca: CertificateAuthority, config: ServerConfig, principal: Principal) -> Hierarchy:
    require(principal, Permission.CAS_READ)
    counts = await ca.certificates.count_valid_by_issuer(ca.clock.now())
    return Hierarchy(ca_lines(ca, config, counts), short_lived_warnings(ca))


async def show(ca: CertificateAuthority, config: ServerConfig, principal: Principal, name: str) -> CaDetail:
    """A generation by its name; a CA's (family's) name shows the generation issuing now."""
    require(principal, Permission.CAS_READ)
    record = ca.authorities.get(name)
    if record is None and name in ca.issuers:
        name = ca.issuing_generation(name)
        record = ca.authorities.get(name)
    if record is None:
        raise NotVisible(WHAT)
    lines = [line for line in (await hierarchy(ca, config, principal)).cas if line.name == name]
    if not lines:
        raise NotVisible(WHAT)
    if record.der is None:
        return CaDetail(lines[0], "", "", "")
    cert = record.certificate
    pem = cert.public_bytes(Encoding.PEM).decode()
    return CaDetail(lines[0], f"{cert.serial_number:x}", fingerprint_sha256(cert), pem)


async def activate(ca: CertificateAuthority, principal: Principal, name: str, at: dt.datetime | None) -> dt.datetime:
    """Generation ``name`` issues from ``at`` (default now); audited as ca.activation_scheduled."""
    require(principal, Permission.CAS_MANAGE)
    now = ca.clock.now()
    when = at or now
    try:
        await schedule_activation(ca.db, name, when, now, principal.actor)
    except ActivationConflict as exc:
        raise Conflict(exc.detail) from None
    return when


async def revoke(ca: CertificateAuthority, principal: Principal, name: str, reason: str, *, force: bool) -> Revoked:
    """Revoke a generation an outside CA signed, in the registry (audited as ca.revoked): every
    server stops issuing from it within a second; its leaves stay answered by OCSP and CRLs."""
    require(principal, Permission.CAS_MANAGE)
    canonical = parse_reason(reason)
    record = revocable(ca, name, force=force)
    root = signed_by_our_root(ca, record)
    if root is not None:
        raise Conflict(
            f"{name} was signed by root {root.name}, whose ARL and OCSP answers must be signed again with "
            "its offline key: run `tetra ca revoke` with --parent-key or --parent-pkcs11-uri"
        )
    at = ca.clock.now().replace(microsecond=0)
    if not await AuthorityStore(ca.db).mark_revoked(name, canonical, at, principal.actor):
        raise Conflict(f"{name} was revoked meanwhile")
    cert = record.certificate
    return Revoked(name, canonical, at, f"{cert.serial_number:x}", cert.issuer.rfc4514_string())
