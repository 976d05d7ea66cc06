"""The words of a notice: an email's subject and plain-text body, or a webhook's JSON document.

Composed once, when the notice is queued, and stored in the outbox row: a retry a day later sends
exactly what was decided, and the outbox is the record of what each recipient was told. The key
follows ca/notices/tables.py ("<rule>:<certificate>:<level>:<channel>:<recipient>"); an endpoint
finding has no certificate of its own, so its location ("@host:port") takes that place.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from ca.inventory.model import InventoryRecord
from ca.inventory.scans import CurrentFinding
from ca.notices.approvals import RULE as APPROVAL_RULE
from ca.notices.approvals import HeldRequest
from ca.notices.outbox import Message
from ca.notices.rules import Route

WEAKNESS_TEXT = {
    "weak-key": "its key is too short (RSA or DSA below 2048 bits)",
    "weak-signature": "it is signed with a broken hash (SHA-1 or MD5)",
    "revoked-deployed": "it is revoked but still deployed",
    "never-deployed": "it was issued but has never been seen deployed",
}


def name_of(record: InventoryRecord) -> str:
    """The certificate's first name ("www.example.com"), else its subject DN."""
    return record.sans[0].partition(":")[2] if record.sans else record.subject


def certificate_facts(record: InventoryRecord) -> dict[str, Any]:
    return {
        "inventory_id": record.id,
        "fingerprint": record.fingerprint,
        "subject": record.subject,
        "names": list(record.sans),
        "issuer": record.issuer_dn,
        "serial": record.serial,
        "not_before": record.not_before.isoformat(),
        "not_after": record.not_after.isoformat(),
        "owner": record.owner,
        "team": record.team,
        "profile": record.profile,
    }


def expiry_notice(record: InventoryRecord, label: str, route: Route, now: dt.datetime) -> Message:
    left = record.not_after - now
    days = round(left / dt.timedelta(days=1))
    when = f"in {days} day{'s' if days != 1 else ''}" if days >= 1 else f"in {int(left.total_seconds() // 3600)} hours"
    subject = f"[Tetra] certificate {name_of(record)} expires {when} ({record.not_after:%Y-%m-%d %H:%M} UTC)"
    lines = [
        f"The certificate for {name_of(record)} expires {when}, at {record.not_after:%Y-%m-%d %H:%M:%S} UTC.",
        "Renew it and deploy the new certificate before then.",
        "",
        *_fact_lines(record),
        "",
        f"You receive this as the certificate's {route.level} (threshold {label}).",
    ]
    document = {"event": "certificate.expiring", "threshold": label, "expires_in_seconds": int(left.total_seconds())}
    return _message(f"expiry:{label}", str(record.id), record.id, route, subject, lines, document, record)


def weakness_notice(record: InventoryRecord, rule: str, route: Route) -> Message:
    subject = f"[Tetra] certificate {name_of(record)}: {rule}"
    lines = [
        f"The certificate for {name_of(record)} needs attention: {WEAKNESS_TEXT.get(rule, rule)}.",
        "",
        *_fact_lines(record),
        "",
        f"You receive this as the certificate's {route.level}.",
    ]
    document = {"event": "certificate.weakness", "rule": rule}
    return _message(rule, str(record.id), record.id, route, subject, lines, document, record)


def endpoint_notice(finding: CurrentFinding, record: InventoryRecord | None, route: Route) -> Message:
    rule = f"weak-endpoint:{finding.code}"
    subject = f"[Tetra] endpoint {finding.location}: {finding.code}"
    lines = [
        f"Discovery found a problem at {finding.location}: {finding.code} ({finding.severity}).",
        finding.detail,
        "",
        *(_fact_lines(record) if record is not None else []),
        f"You receive this as the {route.level} (first found {finding.at:%Y-%m-%d %H:%M} UTC).",
    ]
    document = {
        "event": "endpoint.weakness",
        "rule": rule,
        "location": finding.location,
        "code": finding.code,
        "severity": finding.severity,
        "detail": finding.detail,
    }
    inventory_id = record.id if record is not None else None
    return _message(rule, f"@{finding.location}", inventory_id, route, subject, lines, document, record)


def approval_notice(request: HeldRequest, route: Route, now: dt.datetime) -> Message:
    """A held request, to its approvers (stage "approvers") or, once it waited too long, to the
    escalation list ("escalation"): what it asks for and how to decide it."""
    waited = _age(now - request.created_at)
    late = route.level == "escalation"
    # A subject DN may hold line breaks; a mail header must not.
    subject = f"[Tetra] {'still waiting' if late else 'approval needed'}: request {request.id}, {request.subject}"
    subject = " ".join(subject.split())[:250]
    lines = [
        f"Enrollment request {request.id} {'has waited ' + waited if late else 'waits'} for an approver's decision.",
        "",
        f"  request:   {request.id}",
        f"  protocol:  {request.protocol}",
        f"  profile:   {request.profile}",
        f"  subject:   {request.subject}",
        f"  names:     {', '.join(request.sans) or '-'}",
        f"  requester: {request.requester}",
        f"  team:      {request.team or '-'}",
        f"  held:      {request.created_at:%Y-%m-%d %H:%M:%S} UTC ({waited} ago)",
        "",
        f"Decide: tetra requests approve {request.id}   (or: tetra requests reject {request.id})",
        "or on the dashboard's /ui/requests page.",
        "",
        "You receive this as " + ("the escalation: nobody has decided it yet." if late else "an approver."),
    ]
    document = {
        "event": "request.escalated" if late else "request.pending",
        "request": {
            "id": request.id,
            "protocol": request.protocol,
            "profile": request.profile,
            "subject": request.subject,
            "names": list(request.sans),
            "requester": request.requester,
            "team": request.team,
            "held_at": request.created_at.isoformat(),
            "waiting_seconds": int((now - request.created_at).total_seconds()),
        },
    }
    return _message(APPROVAL_RULE, str(request.id), None, route, subject, lines, document, None)


def _age(waited: dt.timedelta) -> str:
    minutes = max(int(waited.total_seconds() // 60), 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def digest_notice(
    day: str, route: Route, expiring: Sequence[InventoryRecord], weak: Sequence[tuple[InventoryRecord, str]]
) -> Message:
    subject = f"[Tetra] certificate digest {day}: {len(expiring)} expiring, {len(weak)} weakness findings"
    lines = [f"Certificates expiring within 30 days ({len(expiring)}):"]
    lines += [f"  {r.not_after:%Y-%m-%d}  {name_of(r)}  (inventory {r.id})" for r in expiring] or ["  none"]
    lines += ["", f"Open weakness findings ({len(weak)}):"]
    lines += [f"  {rule}  {name_of(r)}  (inventory {r.id})" for r, rule in weak] or ["  none"]
    document = {
        "event": "digest",
        "day": day,
        "expiring": [certificate_facts(r) for r in expiring],
        "weaknesses": [{"rule": rule, "certificate": certificate_facts(r)} for r, rule in weak],
    }
    key = f"digest:{day}:{route.channel}:{route.recipient}"
    body = _body(route, lines, key, document)
    return Message(key, "digest", route.level, route.channel, route.recipient, subject, body)


def _fact_lines(record: InventoryRecord) -> list[str]:
    return [
        f"  subject:     {record.subject}",
        f"  names:       {', '.join(record.sans) or '-'}",
        f"  issuer:      {record.issuer_dn}",
        f"  serial:      {record.serial}",
        f"  valid:       {record.not_before:%Y-%m-%d %H:%M} to {record.not_after:%Y-%m-%d %H:%M} UTC",
        f"  owner, team: {record.owner or '-'}, {record.team or '-'}",
        f"  inventory:   {record.id} (SHA-256 {record.fingerprint})",
    ]


def _message(
    rule: str,
    subject_ref: str,
    inventory_id: int | None,
    route: Route,
    subject: str,
    lines: list[str],
    document: dict[str, Any],
    record: InventoryRecord | None,
) -> Message:
    key = f"{rule}:{subject_ref}:{route.level}:{route.channel}:{route.recipient}"
    if record is not None:
        document = document | {"certificate": certificate_facts(record)}
    body = _body(route, lines, key, document | {"level": route.level})
    return Message(key, rule, route.level, route.channel, route.recipient, subject, body, inventory_id)


def _body(route: Route, lines: list[str], key: str, document: dict[str, Any]) -> str:
    if route.channel == "webhook":
        return json.dumps(document | {"key": key}, sort_keys=True)
    return "\n".join(lines) + "\n"
