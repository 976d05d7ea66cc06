"""CAA (RFC 8659) with the account and method parameters of RFC 8657.

The relevant record set is the first non-empty one found climbing from the
name towards the root; if none exists, any CA may issue. A lookup failure
refuses issuance (docs/reliability.md, demand 7: fail closed).
"""

from __future__ import annotations

from protocols.acme.va.errors import ValidationError
from protocols.acme.va.resolve import CaaRecord, Resolver

KNOWN_TAGS = {"issue", "issuewild", "iodef", "contactemail", "contactphone", "issuemail", "issuevmc"}


async def relevant_records(resolver: Resolver, name: str) -> tuple[str, list[CaaRecord]] | None:
    labels = name.split(".")
    for i in range(len(labels)):
        candidate = ".".join(labels[i:])
        if not candidate:
            break
        records = await resolver.caa(candidate)
        if records:
            return candidate, records
    return None


def _parse_issue(value: str) -> tuple[str, dict[str, str]]:
    domain, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, sep, val = part.strip().partition("=")
        if sep and key:
            params[key.strip().lower()] = val.strip()
    return domain.strip().lower(), params


def permits(
    records: list[CaaRecord], *, wildcard: bool, identities: tuple[str, ...], account_uri: str, method: str
) -> tuple[bool, str]:
    """Whether these records let us issue; the reason when they do not."""
    for record in records:
        if record.flags & 128 and record.tag.lower() not in KNOWN_TAGS:
            return False, f"CAA record has an unknown critical tag {record.tag!r}"
    tag = "issue"
    if wildcard and any(r.tag.lower() == "issuewild" for r in records):
        tag = "issuewild"  # RFC 8659 §4.3: issuewild wins for wildcard names
    relevant = [r for r in records if r.tag.lower() == tag]
    if not relevant:
        return True, ""  # only iodef and the like: no restriction on issuance
    ours = {i.lower() for i in identities}
    for record in relevant:
        domain, params = _parse_issue(record.value)
        if not domain or domain not in ours:
            continue
        if "accounturi" in params and params["accounturi"] != account_uri:
            continue
        if "validationmethods" in params and method not in params["validationmethods"].split(","):
            continue
        return True, ""
    return False, f"CAA records ({tag}) do not authorize this CA for this account and method"


async def check_caa(
    resolver: Resolver, name: str, *, wildcard: bool, identities: tuple[str, ...], account_uri: str, method: str
) -> None:
    found = await relevant_records(resolver, name)
    if found is None:
        return
    where, records = found
    ok, why = permits(records, wildcard=wildcard, identities=identities, account_uri=account_uri, method=method)
    if not ok:
        raise ValidationError("caa", f"CAA at {where} forbids issuance for {name}: {why}")
