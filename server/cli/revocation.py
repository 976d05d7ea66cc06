"""Publishing revocation now, whatever the schedule: `tetra crl generate`, `tetra ocsp refresh`."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from server.cli.ca_keys import parent_key_given
from server.cli.ca_revoke import add_root_publication_options, publish_root
from server.cli.common import CLIError, add_config_option, on_ca

if TYPE_CHECKING:
    from ca.service import CertificateAuthority
    from server.cli.common import Subcommands
    from server.config import ServerConfig


@on_ca
async def crl_generate(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    """Generate and publish CRLs now (complete, partitions, deltas); for a root, with its key,
    its ARL and its OCSP answers about the CAs it signed (server/cli/ca_revoke.py)."""
    from ca.authorities.model import Kind
    from ca.revocation.crl import CrlService
    from server.wiring import crl_settings

    roots = [a.name for a in ca.authorities.values() if a.kind is Kind.ROOT]
    if args.ca in roots:
        if args.delta:
            raise CLIError(f"{args.ca} is a root: it publishes a complete ARL only, no delta CRL")
        return await publish_root(args, ca, config, args.ca)
    if parent_key_given(args):
        raise CLIError("the root's key is for --ca ROOT only: issuing CAs sign their own CRLs")
    if args.ca and args.ca not in ca.issuers:
        raise CLIError(f"no issuer or root named {args.ca!r} (have: {', '.join([*ca.issuers, *roots])})")
    service = CrlService(ca, crl_settings(config))
    await service.start()
    for name in [args.ca] if args.ca else list(ca.issuers):
        published = await (service.generate_deltas(name) if args.delta else service.generate(name))
        for rec in published:
            print(
                f"{name}: {rec.kind} CRL {rec.scope} number {rec.number}, {rec.entries} entries, "
                f"next update {rec.next_update:%Y-%m-%d %H:%M:%S} UTC"
            )
    return 0


@on_ca
async def ocsp_refresh(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    """Sign what a running server would: missing, stale and aging pre-signed OCSP responses."""
    from ca.revocation.ocsp import OcspService
    from server.wiring import ocsp_settings

    service = OcspService(ca, ocsp_settings(config))
    try:
        await service.start(preload=False)
        repaired = await service.reconcile(limit=1_000_000)
        refreshed = await service.refresh_due()
    finally:
        await service.close()
    print(f"OCSP: signed {repaired} missing or stale responses, refreshed {refreshed}")
    return 0


def add_commands(sub: Subcommands) -> None:
    crl = sub.add_parser("crl", help="certificate revocation lists").add_subparsers(dest="action", required=True)
    p = add_config_option(crl.add_parser("generate", help="generate and publish CRLs now"))
    p.add_argument(
        "--ca",
        default=None,
        help="issuing CA name (default: every issuer), or a root's name with its key: its ARL and OCSP answers",
    )
    p.add_argument("--delta", action="store_true", help="delta CRLs only, on top of the published ones")
    add_root_publication_options(p)
    p.set_defaults(func=crl_generate)
    ocsp = sub.add_parser("ocsp", help="OCSP responses").add_subparsers(dest="action", required=True)
    add_config_option(ocsp.add_parser("refresh", help="sign missing and aging pre-signed responses now")).set_defaults(
        func=ocsp_refresh
    )
