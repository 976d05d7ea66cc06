"""Reading the inventory: one SELECT built from an InventoryFilter, and the records it yields.

Every filter maps onto an indexed column where a large inventory needs one: expiry
(``not_after``), owner, team, issuer DN, last seen, and names through ``inventory_names`` (a range
on the reversed name, so ``example.com`` finds ``www.example.com`` by index). The CA's ledger is
joined for what only it knows about Tetra's own certificates: the issuing CA's name, profile,
protocol and revocation, which are therefore always current without being copied.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, Subquery, and_, exists, func, or_, select, union
from sqlalchemy.engine import Row

from ca.inventory.model import InventoryFilter, InventoryRecord, Sighting, Source, Status
from ca.inventory.tables import inventory, inventory_names, sightings
from ca.store.tables import certificates, utc_value

i = inventory.c
c = certificates.c
REVOKED_AT = func.coalesce(i.revoked_at, c.revoked_at)
_JOINED = inventory.outerjoin(certificates, c.id == i.certificate_id)
_SOURCES = {source.value: source for source in Source}  # a dict lookup: Source(...) is slower per row
_LEDGER_COLUMNS = (
    c.issuer.label("issuer_name"),
    c.profile,
    c.protocol,
    c.revocation_reason,
    c.location.label("declared_location"),
    REVOKED_AT.label("any_revoked_at"),
)


def base_select(*, with_der: bool = False, source: FromClause = _JOINED) -> Select[Any]:
    columns = [col for col in inventory.columns if with_der or col.name != "der"]
    return select(*columns, *_LEDGER_COLUMNS).select_from(source)


def filtered(flt: InventoryFilter, *, with_der: bool = False) -> Select[Any]:
    query = base_select(with_der=with_der, source=_source(flt))
    for condition in conditions(flt):
        query = query.where(condition)
    if flt.order == "expiry":
        query = query.order_by(i.not_after, i.id)
    else:
        query = query.order_by(i.id)
    if flt.after_id is not None:
        query = query.where(i.id > flt.after_id)
    return query.limit(flt.limit)


def counted(flt: InventoryFilter) -> Select[Any]:
    query = select(func.count()).select_from(_source(flt))
    for condition in conditions(flt):
        query = query.where(condition)
    return query


def conditions(flt: InventoryFilter) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if flt.expiring_before is not None:
        out.append(i.not_after <= flt.expiring_before)
    if flt.valid_at is not None:
        out.append(i.not_after > flt.valid_at)
    if flt.status is not None:
        out.append(_status_condition(flt.status, flt.now or dt.datetime.now(dt.UTC), flt.expiring_days))
    if flt.issuer:
        out.append(or_(c.issuer == flt.issuer, i.issuer_dn.contains(flt.issuer, autoescape=True)))
    if flt.owner:
        out.append(i.owner == flt.owner)
    if flt.team:
        out.append(i.team == flt.team)
    if flt.teams is not None:
        out.append(i.team.in_(sorted(flt.teams)))
    if flt.tag:
        out.append(i.tags.contains(json.dumps(flt.tag), autoescape=True))
    if flt.key_size_below is not None:
        out.append(and_(i.key_algorithm.in_(("rsa", "dsa")), i.key_size < flt.key_size_below))
    if flt.signature_algorithm:
        out.append(func.lower(i.signature_algorithm) == flt.signature_algorithm.lower())
    if flt.seen_at:
        out.append(
            exists().where(
                sightings.c.inventory_id == i.id, sightings.c.location.startswith(flt.seen_at, autoescape=True)
            )
        )
    if flt.not_seen_since is not None:
        out.append(and_(i.last_seen_at.is_not(None), i.last_seen_at < flt.not_seen_since))
    if flt.source is not None:
        out.append(i.source == flt.source.value)
    if flt.profile:
        out.append(c.profile == flt.profile)
    if flt.protocol:
        out.append(c.protocol == flt.protocol)
    if flt.serial:
        out.append(i.serial == flt.serial)
    return out


def _source(flt: InventoryFilter) -> FromClause:
    """The certificates joined to the ledger and, for a search by name, to the ids it matched
    (a join rather than ``id IN``: see names_matching)."""
    if not flt.name:
        return _JOINED
    matched = names_matching(flt.name)
    return _JOINED.join(matched, matched.c.inventory_id == i.id)


def names_matching(text: str) -> Subquery:
    """Ids of certificates with ``text`` as a name, or a name under it (``example.com`` finds
    ``www.example.com``; ``*.example.com`` is found as itself), each once and in id order.

    Two index range scans joined by UNION rather than one OR: each is then an index-only scan
    (the indexes carry the id), where an OR is a bitmap that visits the names table too. In id
    order, joined: a first page in id order then fetches a page of certificates and stops, where
    ``id IN (...)`` fetched every match to sort them (bench/bench_inventory.py, a domain with
    4,443 certificates at 1M: 37 ms against 11 ms in PostgreSQL)."""
    name = text.strip().lower()
    reversed_name = name[::-1]
    below = reversed_name + "."
    names = inventory_names.c
    found = union(
        select(names.inventory_id).where(names.name == name),
        select(names.inventory_id).where(names.reversed_name > below, names.reversed_name < below + "\U0010ffff"),
    )
    return found.order_by(found.selected_columns.inventory_id).subquery("matched")


def _status_condition(status: Status, now: dt.datetime, expiring_days: int) -> ColumnElement[bool]:
    """Revocation is tested column by column, not as COALESCE(...) IS NULL: PostgreSQL has no
    statistics for the expression and guesses that 0.5% of rows pass it, and with that guess a
    first page by expiry reads and sorts every expiring row instead of walking the expiry index
    and stopping after a page (bench/bench_inventory.py at 1M rows: 450 ms against 6 ms).
    ``certificate_id IS NULL`` stands for "no ledger row" (whose revoked_at reads NULL through the
    outer join) because it has statistics of its own; the ledger's revoked_at may have none."""
    soon = now + dt.timedelta(days=expiring_days)
    unrevoked = and_(i.revoked_at.is_(None), or_(i.certificate_id.is_(None), c.revoked_at.is_(None)))
    if status is Status.REVOKED:
        return or_(i.revoked_at.is_not(None), c.revoked_at.is_not(None))
    if status is Status.EXPIRED:
        return and_(unrevoked, i.not_after <= now)
    if status is Status.EXPIRING:
        return and_(unrevoked, i.not_after > now, i.not_after <= soon)
    return and_(unrevoked, i.not_after > soon)


def record(row: Row[Any]) -> InventoryRecord:
    m = row._mapping
    return InventoryRecord(
        id=m["id"],
        fingerprint=m["fingerprint"],
        source=_SOURCES[m["source"]],
        certificate_id=m["certificate_id"],
        subject=m["subject"],
        issuer_dn=m["issuer_dn"],
        serial=m["serial"],
        sans=tuple(json.loads(m["sans"])),
        not_before=m["not_before"],
        not_after=m["not_after"],
        key_algorithm=m["key_algorithm"],
        key_size=m["key_size"],
        signature_algorithm=m["signature_algorithm"],
        is_ca=bool(m["is_ca"]),
        self_signed=bool(m["self_signed"]),
        owner=m["owner"],
        team=m["team"],
        application=m["application"],
        tags=tuple(json.loads(m["tags"])),
        renewal_method=m["renewal_method"],
        replaces_id=m["replaces_id"],
        revoked_at=utc_value(m["any_revoked_at"]),
        first_seen_at=m["first_seen_at"],
        last_seen_at=m["last_seen_at"],
        created_at=m["created_at"],
        issuer_name=m["issuer_name"],
        profile=m["profile"],
        protocol=m["protocol"],
        revocation_reason=m["revocation_reason"],
        declared_location=m["declared_location"],
        der=m["der"] if "der" in m else b"",  # .get() of a missing key costs an exception per row
    )


def sighting(row: Row[Any]) -> Sighting:
    m = row._mapping
    return Sighting(kind=m["kind"], location=m["location"], first_seen=m["first_seen"], last_seen=m["last_seen"])
