"""Certificates through the operator: `tetra requests`, `issue`, `revoke`, and `audit verify`
over the log those leave behind. Listing them is the inventory's (server/cli/inventory.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.serialization import Encoding

from server.cli.common import CLIError, add_config_option, add_operator_option, on_ca, on_ca_reading

if TYPE_CHECKING:
    from ca.service import CertificateAuthority
    from server.cli.common import Subcommands
    from server.config import ServerConfig


# -- requests ---------------------------------------------------------------------------------
@on_ca_reading
async def requests_list(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    found = await ca.requests.list(status=args.status)
    if not found:
        print(f"no {args.status} requests" if args.status else "no requests", file=sys.stderr)
    for r in found:
        print(f"{r.id:>6}  {r.status:<9} {r.protocol:<5} {r.profile:<14} {r.requester:<24} {','.join(r.sans)}")
    return 0


@on_ca
async def requests_approve(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    issued = await ca.approve(args.id, operator=args.operator)
    print(f"approved request {args.id}: issued serial {issued.certificate.serial_number:x}")
    return 0


@on_ca
async def requests_reject(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    await ca.reject(args.id, operator=args.operator, note=args.note or "")
    print(f"rejected request {args.id}")
    return 0


# -- issue / revoke -----------------------------------------------------------------------------
@on_ca
async def issue(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.csr import enrollment_from_csr, parse_csr
    from ca.enrollment import AuthMethod, InventoryFields, Issued, Requester

    try:
        data = Path(args.csr).read_bytes() if args.csr != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise CLIError(f"{args.csr}: {exc.strerror}") from None
    request = enrollment_from_csr(
        parse_csr(data),
        protocol="cli",
        profile_name=args.profile,
        requester=Requester(f"cli:{args.operator}", AuthMethod.OPERATOR),
        inventory=InventoryFields(args.owner, args.team, args.application, args.location),
    )
    decision = await ca.decide(request)
    if args.dry_run:
        t = decision.template
        print(f"profile {t.profile.name}: would issue from {t.issuer_name}")
        print(f"  subject:  {t.subject.rfc4514_string() or '(empty)'}")
        print(f"  SANs:     {', '.join(str(i) for i in t.subject_alt_names) or '(none)'}")
        print(
            f"  validity: {t.not_before:%Y-%m-%d %H:%M:%S} .. {t.not_after:%Y-%m-%d %H:%M:%S} UTC "
            f"({t.validity_days:g} days)"
        )
        print(f"  approval: {t.profile.approval}; lint: {t.profile.lint}")
        return 0
    outcome = await ca.enroll(decision)
    if not isinstance(outcome, Issued):
        print(f"request {outcome.request_id} is pending approval")
        return 0
    pem = outcome.certificate.public_bytes(Encoding.PEM) + b"".join(c.public_bytes(Encoding.PEM) for c in outcome.chain)
    if args.out:
        Path(args.out).write_bytes(pem)
        print(f"issued serial {outcome.certificate.serial_number:x} -> {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(pem.decode())
    return 0


@on_ca
async def revoke(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.records import parse_serial

    serial = parse_serial(args.serial)
    record = await ca.find_by_serial(serial, args.issuer)
    revoked = await ca.revoke(record.issuer, serial, args.reason, requester=f"cli:{args.operator}")
    print(
        f"revoked {revoked.issuer}/{revoked.serial_hex} ({revoked.revocation_reason}) "
        f"at {revoked.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    return 0


# -- audit ------------------------------------------------------------------------------------
@on_ca_reading
async def audit_verify(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    report = await ca.audit.verify()
    if report.ok:
        print(f"audit log intact: {report.events} events, chain verified")
        return 0
    for problem in report.problems:
        print(f"audit: {problem}", file=sys.stderr)
    print(f"audit log TAMPERED: {len(report.problems)} problem(s) in {report.events} events", file=sys.stderr)
    return 1


def add_commands(sub: Subcommands) -> None:
    requests = sub.add_parser("requests", help="enrollment requests waiting for approval")
    rsub = requests.add_subparsers(dest="action", required=True)
    p = add_config_option(rsub.add_parser("list"))
    p.add_argument("--status", choices=["pending", "approved", "rejected"], default=None)
    p.set_defaults(func=requests_list)
    for action, command in (("approve", requests_approve), ("reject", requests_reject)):
        p = add_config_option(rsub.add_parser(action))
        p.add_argument("id", type=int)
        add_operator_option(p)
        p.set_defaults(func=command)
    rsub.choices["reject"].add_argument("--note", default="")

    p = add_config_option(sub.add_parser("issue", help="issue a certificate from a CSR"))
    p.add_argument("--csr", required=True, help="PEM or DER CSR file, or - for stdin")
    p.add_argument("--profile", required=True)
    p.add_argument("--dry-run", action="store_true", help="show the decision without signing")
    p.add_argument("--out", default="")
    add_operator_option(p)
    for field in ("owner", "team", "application", "location"):
        p.add_argument(f"--{field}", default=None)
    p.set_defaults(func=issue)

    p = add_config_option(sub.add_parser("revoke", help="revoke a certificate by serial"))
    p.add_argument("serial", help="hexadecimal serial")
    p.add_argument("--reason", default="unspecified", help="RFC 5280 reason name or code")
    p.add_argument("--issuer", default=None)
    add_operator_option(p)
    p.set_defaults(func=revoke)

    audit = sub.add_parser("audit", help="audit log").add_subparsers(dest="action", required=True)
    add_config_option(audit.add_parser("verify", help="check the hash chain")).set_defaults(func=audit_verify)
