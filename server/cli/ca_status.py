"""`tetra ca list` and `ca show`: every CA in the registry, its state, and what needs attention.

One line per generation: kind, state (ca/authorities/model.State), validity, where its key is
and how many valid certificates it has issued. Below the table, a warning for every CA that
issues (or is staged to) whose own certificate ends before a leaf from its longest profile
would (CAL-03): such leaves are cut short at the CA's notAfter, and after it nothing is issued.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from dataclasses import asdict, dataclass

from ca.authorities.lineage import families, key_owner, state_of
from ca.authorities.model import Authority, Kind, State
from ca.service import CertificateAuthority
from server.cli.common import CLIError
from server.config import ServerConfig


@dataclass(frozen=True)
class CaLine:
    name: str
    family: str
    kind: str
    state: str
    subject: str
    not_before: str
    not_after: str
    key: str
    valid_certificates: int
    parent: str
    default: bool  # a generation of the CA that profiles naming no issuer use


def key_description(record: Authority, config: ServerConfig) -> str:
    if record.kind is Kind.ROOT:
        return "offline (not in the server)"
    if record.key is not None:
        return record.key.describe(config.source.parent)
    family = config.issuers.get(record.family)
    spec = config.signers[family.signer] if family else None
    if spec is None:
        return "?"
    return f"pkcs11 {spec.uri}" if spec.backend == "pkcs11" else f"file {spec.key_file}"


def longest_validity(ca: CertificateAuthority, family: str) -> int:
    """Days: the longest validity of a profile that issues from ``family``."""
    days = [p.max_days for p in ca.profiles.values() if (p.issuer or ca.default_issuer) == family]
    return max(days, default=0)


def _valid(record: Authority, owner: str, counts: dict[str, int], ca: CertificateAuthority) -> int:
    """Valid certificates it issued; for a root, the CAs it signed that are not revoked. A same-key
    generation's leaves are stored under the generation that owns the key (lineage.key_owner)."""
    if record.kind is Kind.ROOT:
        children = ca.authorities.values()
        return sum(1 for a in children if a.parent == record.name and a.revoked_at is None and a.der is not None)
    return counts.get(record.name, 0) if owner == record.name else 0


def ca_lines(ca: CertificateAuthority, config: ServerConfig, counts: dict[str, int]) -> list[CaLine]:
    now = ca.clock.now()
    lines = []
    for members in families(ca.authorities.values()).values():
        for record in members:
            state = state_of(record, members, now)
            cert = record.certificate if record.der is not None else None
            owner = key_owner(record, members)
            lines.append(
                CaLine(
                    name=record.name,
                    family=record.family,
                    kind=record.kind.value,
                    state=state.value,
                    subject=cert.subject.rfc4514_string() if cert else "(awaiting its certificate)",
                    not_before=f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}" if cert else "",
                    not_after=f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}" if cert else "",
                    key=key_description(record, config),
                    # A same-key generation's leaves are stored under the generation that owns the key.
                    valid_certificates=_valid(record, owner, counts, ca),
                    parent=record.parent or "",
                    default=record.family == ca.default_issuer,
                )
            )
    return lines


def short_lived_warnings(ca: CertificateAuthority) -> list[str]:
    """CAL-03: an issuing CA (active or staged) that ends before a leaf it would issue could."""
    now = ca.clock.now()
    warnings = []
    for family, members in families(ca.authorities.values()).items():
        days = longest_validity(ca, family)
        for record in members:
            if record.kind is not Kind.ISSUING or record.der is None:
                continue
            if state_of(record, members, now) not in (State.ACTIVE, State.STAGED):
                continue
            end = record.certificate.not_valid_after_utc
            if days and end < now + dt.timedelta(days=days):
                warnings.append(
                    f"warning: {record.name} ends {end:%Y-%m-%d} (in {(end - now).days} days), before the "
                    f"{days}-day certificates of its profiles would: they are cut short at its end, and it "
                    "issues nothing after; roll it over (tetra ca rollover)"
                )
    return warnings


async def ca_list(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    counts = await ca.certificates.count_valid_by_issuer(ca.clock.now())
    lines = ca_lines(ca, config, counts)
    warnings = short_lived_warnings(ca)
    if args.format == "json":
        print(json.dumps({"cas": [asdict(line) for line in lines], "warnings": warnings}, indent=2))
        return 0
    header = ("NAME", "KIND", "STATE", "NOT BEFORE", "NOT AFTER", "VALID", "KEY", "SUBJECT")
    rows = [
        (
            ln.name + (" (default)" if ln.default else ""),
            ln.kind,
            ln.state,
            ln.not_before,
            ln.not_after,
            str(ln.valid_certificates),
            ln.key,
            ln.subject,
        )
        for ln in lines
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    for warning in warnings:
        print(warning)
    return 0


async def ca_show(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    """One generation: a generation's name shows it; a CA's name shows the generation issuing now."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ca.hierarchy import fingerprint_sha256

    name = args.name or ca.default_issuer
    if name not in ca.authorities and name not in ca.issuers:
        raise CLIError(f"no CA named {name!r} (have: {', '.join(sorted(ca.authorities) or ca.issuers)})")
    record = ca.authorities.get(name)
    if record is None or (record.kind is Kind.ISSUING and not args.name):
        name = ca.issuing_generation(name)
        record = ca.authorities.get(name)
    cert = record.certificate if record is not None and record.der is not None else ca.ca_certificate(name)
    if cert is None:
        raise CLIError(f"{name} has no certificate yet: tetra ca import --name {record.family if record else name}")
    if args.pem:
        print(cert.public_bytes(Encoding.PEM).decode(), end="")
        return 0
    family = families(ca.authorities.values()).get(record.family, [record]) if record else []
    print(f"issuer:      {name}")
    if record is not None:
        print(f"state:       {state_of(record, family, ca.clock.now()).value}")
        print(f"key:         {key_description(record, config)}")
    print(f"subject:     {cert.subject.rfc4514_string()}")
    print(f"serial:      {cert.serial_number:x}")
    print(f"valid:       {cert.not_valid_before_utc:%Y-%m-%d %H:%M} .. {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    print(f"sha256:      {fingerprint_sha256(cert)}")
    for root in ca.roots:
        print(f"root:        {root.subject.rfc4514_string()}")
        print(f"root sha256: {fingerprint_sha256(root)}")
    return 0
