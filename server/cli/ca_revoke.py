"""`tetra ca revoke NAME --reason R`: revoke one CA generation, and the root's publications.

The registry records the revocation (audited); every server stops issuing from the generation
within a second (its registry watch), while the generation's own key keeps signing OCSP and CRLs
for the certificates it issued until they expire (CAL-02). When one of our roots signed it, the
root's ARL and OCSP answers are signed again with the root's key, brought in for this command
only (server/cli/ca_keys.py), and stored in the same transaction as the revocation: the registry
and what the root says never disagree (ca/authorities/root_publication.py). `tetra crl generate
--ca ROOT` renews them (server/cli/revocation.py) through `publish_root` below.
"""

from __future__ import annotations

import argparse
import datetime as dt
from functools import partial
from typing import TYPE_CHECKING

from server.cli.ca_keys import add_parent_key_options, open_parent_key, parent_key_given
from server.cli.common import CLIError, add_config_option, add_operator_option, on_ca_reading

if TYPE_CHECKING:
    from collections.abc import Callable

    from ca.authorities.model import Authority
    from ca.authorities.root_publication import RootPublication
    from ca.service import CertificateAuthority
    from ca.store.db import Tx
    from server.cli.common import Subcommands
    from server.config import ServerConfig

NEXT_UPDATE_HELP = (
    "days until the nextUpdate of the root's ARL and OCSP answers (default 90, at most 365): the "
    "root's key is offline, so they must last until it is next brought out to renew them with "
    "`tetra crl generate --ca ROOT`; a quarter leaves room for a missed ceremony, and the CA/B "
    "Forum allows at most 12 months for a root's CRL and its OCSP answers about CA certificates"
)


def add_root_publication_options(p: argparse.ArgumentParser) -> None:
    add_parent_key_options(p, who="root")
    p.add_argument("--next-update-days", type=int, default=90, help=NEXT_UPDATE_HELP)


def _publisher(
    args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig, root: Authority
) -> Callable[[Tx], RootPublication]:
    """The root's publication, its key opened (or a one-line refusal) before anything changes."""
    from ca.authorities.root_publication import publish
    from server.wiring import crl_settings, ocsp_settings

    if not 1 <= args.next_update_days <= 365:
        raise CLIError(f"--next-update-days must be between 1 and 365, not {args.next_update_days}")
    key = open_parent_key(args, root.certificate).key
    now = ca.clock.now()
    next_update = min(now + dt.timedelta(days=args.next_update_days), root.certificate.not_valid_after_utc)
    return partial(
        publish,
        root=root,
        key=key,
        now=now,
        next_update=next_update.replace(microsecond=0),
        hash_names=ocsp_settings(config).presign_hashes,
        keep=crl_settings(config).keep,
    )


def describe(publication: RootPublication) -> str:
    p = publication
    return (
        f"{p.root}: ARL number {p.number} lists {p.revoked} revoked CA certificate(s); OCSP answers "
        f"for {p.certificates} CA certificate(s) ({p.answers} responses); next update "
        f"{p.next_update:%Y-%m-%d %H:%M:%S} UTC (renew before then: tetra crl generate --ca {p.root})"
    )


async def publish_root(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig, root: str) -> int:
    """`tetra crl generate --ca ROOT`: sign the root's ARL and OCSP answers again."""
    record = ca.authorities[root]
    if record.der is None:
        raise CLIError(f"root {root} has no certificate yet")
    publication = await ca.db.write(_publisher(args, ca, config, record))
    print(describe(publication))
    return 0


def _checked(args: argparse.Namespace, ca: CertificateAuthority) -> Authority:
    """The generation to revoke, or a one-line refusal before anything is opened or changed."""
    from ca.errors import BadRequest
    from server.ca_revocation_checks import revocable

    try:
        return revocable(ca, args.name, force=args.force)
    except BadRequest as exc:
        raise CLIError(exc.detail) from None


async def ca_revoke(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.authorities.store import AuthorityStore
    from ca.errors import CAError
    from ca.revocation.reasons import parse_reason
    from server.ca_revocation_checks import signed_by_our_root

    try:
        reason = parse_reason(args.reason)
    except CAError as exc:
        raise CLIError(exc.detail) from None
    record = _checked(args, ca)
    parent = signed_by_our_root(ca, record)
    published: list[RootPublication] = []
    then = None
    if parent is not None:
        if not parent_key_given(args):
            raise CLIError(
                f"{record.name} was signed by root {parent.name}, whose ARL and OCSP answers are signed "
                "again now: give the root's key with --parent-key FILE or --parent-pkcs11-uri URI"
            )
        sign = _publisher(args, ca, config, parent)

        def then(tx: Tx) -> None:  # may run again after a deadlock abort: keep the last one
            published[:] = [sign(tx)]

    elif parent_key_given(args):
        raise CLIError(f"{record.name} was not signed by a root of this CA: no parent key is used")
    at = ca.clock.now().replace(microsecond=0)
    actor = f"cli:{args.operator}"
    if not await AuthorityStore(ca.db).mark_revoked(record.name, reason, at, actor, then=then):
        raise CLIError(f"{record.name} was revoked meanwhile")
    serial = f"{record.certificate.serial_number:x}"
    print(f"{record.name} revoked ({reason}) at {at:%Y-%m-%d %H:%M:%S} UTC; certificate serial {serial}")
    if published:
        print(describe(published[0]))
    else:
        issuer = record.certificate.issuer.rfc4514_string()
        print(f"its parent is not one of this CA's roots: {issuer} must revoke serial {serial} itself")
    print(
        f"servers stop issuing from {record.name} within a second; the certificates it issued stay "
        f"answered by OCSP and listed on /crl/{record.name}.crl until they expire"
    )
    return 0


def add_commands(ca: Subcommands) -> None:
    p = ca.add_parser(
        "revoke",
        help="revoke a CA generation: its root's ARL and OCSP answer so, it stops issuing, its leaves stay answered",
    )
    add_config_option(p)
    p.add_argument("name", help="the generation's registry name (issuing-ca, issuing-ca.2, ...)")
    p.add_argument("--reason", required=True, help="RFC 5280 reason: keyCompromise, cACompromise, superseded, ...")
    p.add_argument(
        "--force", action="store_true", help="revoke even the generation a profile issues from now (issuance stops)"
    )
    add_operator_option(p)
    add_root_publication_options(p)
    p.set_defaults(func=on_ca_reading(ca_revoke))
