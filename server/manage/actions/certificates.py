"""Certificates in the inventory: search, show, edit, download, revoke. Issuing new ones
(request, renew, reissue) is server/manage/actions/issuance.py.

A team-bound principal sees its teams' certificates only: searches are narrowed to them in the
query itself, and a single certificate of another team is refused exactly as a missing one
(`NotVisible`, OPS-02). Every list and lookup first mirrors what the CA issued since the last
look (ca/inventory/sync.py), as `tetra inventory` does, so a certificate just issued is there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from ca.inventory.model import Edit, InventoryFilter, InventoryRecord
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.records import CertificateRecord
from ca.service import CertificateAuthority
from server.manage.actions.access import require, visible
from server.manage.actions.errors import Conflict, Forbidden, NotVisible

WHAT = "certificate"


class DownloadFormat(enum.StrEnum):
    PEM = "pem"  # the certificate, then its chain up to (not including) the root
    DER = "der"  # the certificate alone
    PKCS7 = "pkcs7"  # certs-only PKCS#7 (DER): the certificate and its chain


MEDIA_TYPES = {
    DownloadFormat.PEM: "application/pem-certificate-chain",
    DownloadFormat.DER: "application/pkix-cert",
    DownloadFormat.PKCS7: "application/pkcs7-mime",
}


@dataclass(frozen=True)
class Download:
    data: bytes
    media_type: str
    filename: str


@dataclass(frozen=True)
class Labels:
    """What PATCH /certificates/{id} may change; None leaves a field, "" clears it; `tags`
    replaces the whole set."""

    owner: str | None = None
    team: str | None = None
    application: str | None = None
    tags: tuple[str, ...] | None = None


async def search(ca: CertificateAuthority, principal: Principal, flt: InventoryFilter) -> list[InventoryRecord]:
    require(principal, Permission.CERTIFICATES_READ)
    now = ca.clock.now()
    await ca.inventory.sync(now)
    if not principal.all_teams:
        flt = replace(flt, teams=principal.teams)
    return await ca.inventory.records(replace(flt, now=flt.now or now))


async def show(ca: CertificateAuthority, principal: Principal, inventory_id: int) -> InventoryRecord:
    require(principal, Permission.CERTIFICATES_READ)
    return await visible_record(ca, principal, inventory_id)


async def edit(ca: CertificateAuthority, principal: Principal, inventory_id: int, labels: Labels) -> InventoryRecord:
    """Owner, team, application, tags. A team-bound principal may move a certificate only to
    another of its own teams (and not give it away to one it would then no longer see)."""
    require(principal, Permission.CERTIFICATES_EDIT)
    record = await visible_record(ca, principal, inventory_id)
    if labels.team is not None and not principal.all_teams and labels.team not in principal.teams:
        raise Forbidden(f"team {labels.team!r} is not one of yours ({', '.join(sorted(principal.teams))})")
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    if labels.tags is not None:
        add_tags = tuple(sorted(set(labels.tags) - set(record.tags)))
        remove_tags = tuple(sorted(set(record.tags) - set(labels.tags)))
    change = Edit(
        owner=labels.owner,
        team=labels.team,
        application=labels.application,
        add_tags=add_tags,
        remove_tags=remove_tags,
    )
    if change == Edit():
        return record  # nothing differs: no write, no audit event
    return await ca.inventory.edit(record.id, change, actor=principal.actor, now=ca.clock.now())


async def download(ca: CertificateAuthority, principal: Principal, inventory_id: int, fmt: DownloadFormat) -> Download:
    require(principal, Permission.CERTIFICATES_READ)
    record = await visible_record(ca, principal, inventory_id)
    certificate = x509.load_der_x509_certificate(record.der)
    chain = ca.chain(record.issuer_name) if record.issuer_name in ca.issuers else ()
    name = f"certificate-{record.id}"
    if fmt is DownloadFormat.DER:
        return Download(record.der, MEDIA_TYPES[fmt], f"{name}.cer")
    if fmt is DownloadFormat.PKCS7:
        data = pkcs7.serialize_certificates([certificate, *chain], Encoding.DER)
        return Download(data, MEDIA_TYPES[fmt], f"{name}.p7b")
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in (certificate, *chain))
    return Download(pem, MEDIA_TYPES[fmt], f"{name}.pem")


async def revoke(
    ca: CertificateAuthority, principal: Principal, inventory_id: int, reason: str | int
) -> CertificateRecord:
    require(principal, Permission.CERTIFICATES_REVOKE)
    record = await visible_record(ca, principal, inventory_id)
    issued = await ledger_record(ca, record)
    return await ca.revoke(issued.issuer, issued.serial, reason, requester=principal.actor)


async def revoke_by_serial(
    ca: CertificateAuthority, principal: Principal, serial: int, issuer: str | None, reason: str | int
) -> CertificateRecord:
    """POST /revoke's way in: by serial (and issuer, when two have used it)."""
    require(principal, Permission.CERTIFICATES_REVOKE)
    issued = await ca.find_by_serial(serial, issuer)
    if not principal.all_teams:
        await ca.inventory.sync(ca.clock.now())
        found = await ca.inventory.records(InventoryFilter(serial=issued.serial_hex, teams=principal.teams))
        if not any(r.certificate_id == issued.id for r in found):
            raise NotVisible(WHAT)
    return await ca.revoke(issued.issuer, issued.serial, reason, requester=principal.actor)


async def ledger_record(ca: CertificateAuthority, record: InventoryRecord) -> CertificateRecord:
    """The CA's own record of an inventory certificate it issued; others cannot be revoked or
    renewed here (the CA that issued them must)."""
    issued = await ca.certificate(record.certificate_id) if record.certificate_id is not None else None
    if issued is None:
        raise Conflict(f"certificate {record.id} was not issued by this CA ({record.source.value})")
    return issued


async def visible_record(ca: CertificateAuthority, principal: Principal, inventory_id: int) -> InventoryRecord:
    await ca.inventory.sync(ca.clock.now())
    record = await ca.inventory.get(inventory_id)
    if record is None:
        raise NotVisible(WHAT)
    visible(principal, record.team, WHAT)
    return record
