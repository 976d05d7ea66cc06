"""The CA hierarchy as an operator sees and steers it through the management plane: every
generation with its state (what `tetra ca list` prints, server/cli/ca_status.py), one
generation in detail (`tetra ca show`), and activating a staged generation (`tetra ca
activate`, through the same ca/authorities/activation.py).

Not here, on purpose: rollover and revoking a generation. Both sign with the parent's key, which
for this CA's own roots is offline (a file or a token the operator brings to `tetra ca rollover`
/ `tetra ca revoke --parent-key`), and rollover writes a new private key to disk: neither belongs
behind a bearer token. They stay commands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding

from ca.authorities.activation import ActivationConflict, schedule_activation
from ca.hierarchy import fingerprint_sha256
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.service import CertificateAuthority
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
