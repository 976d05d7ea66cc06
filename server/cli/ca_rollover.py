"""`tetra ca rollover` and `tetra ca activate`: a CA's next generation, staged, then switched to.

rollover makes the next certificate (and key) of an issuing CA or a root and registers it
staged: published and announced at once, issuing nothing. activate sets the time from which a
generation issues; every server process switches at that time by its own clock (CAL-06). The
parent's (or, for a root, the old root's) key is opened and checked before anything is made,
and a key made before a later failure is removed, so a refused command leaves nothing (CAL-05).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from server.cli.ca_keys import add_parent_key_options, open_parent_key
from server.cli.common import (
    CLIError,
    add_config_option,
    add_operator_option,
    config_relative,
    on_ca_reading,
    parse_time,
)
from server.cli.new_key import add_new_key_options

if TYPE_CHECKING:
    from ca.authorities.model import Authority, KeyLocation
    from ca.service import CertificateAuthority
    from ca.signers.registry import SignerSpec
    from server.cli.common import Subcommands
    from server.config import ServerConfig


def _describe(name: str, authority: Authority) -> str:
    from ca.hierarchy import fingerprint_sha256

    cert = authority.certificate
    return (
        f"staged {name}: {cert.subject.rfc4514_string()}  serial {cert.serial_number:x}\n"
        f"  valid {cert.not_valid_before_utc:%Y-%m-%d %H:%M} .. {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        f"  sha256 {fingerprint_sha256(cert)}"
    )


def _discard(spec: SignerSpec) -> None:
    """Remove a key made by a command that then failed (a token key is named for the operator)."""
    from ca.authorities.rollover import discard_key

    left = discard_key(spec)
    if left:
        print(f"tetra: note: {left}", file=sys.stderr)


@on_ca_reading
async def ca_rollover(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.authorities.model import Kind
    from ca.authorities.rollover import current_of, family_of
    from ca.authorities.store import AuthorityStore

    if args.same_key == args.new_key:
        raise CLIError("say which key the next generation has: exactly one of --same-key and --new-key")
    now = ca.clock.now()
    records = await AuthorityStore(ca.db).all()
    family = family_of(args.name, records)
    base = current_of(family, now)
    if base.kind is Kind.ROOT:
        return await _root_rollover(args, ca, config, family, base, now)
    return await _issuing_rollover(args, ca, config, records, family, base, now)


async def _issuing_rollover(
    args: argparse.Namespace,
    ca: CertificateAuthority,
    config: ServerConfig,
    records: list[Authority],
    family: list[Authority],
    base: Authority,
    now: dt.datetime,
) -> int:
    from ca.audit import AuditEvent
    from ca.authorities import rollover
    from ca.authorities.model import KeyLocation, generation_name
    from ca.authorities.store import AuthorityStore

    if args.out_dir or args.pkcs11_uri:
        raise CLIError(
            "--out-dir and --pkcs11-uri are for a root rollover; an issuing CA's new key goes beside its key"
        )
    parent = rollover.signing_parent(base, records, now)
    parent_key = open_parent_key(args, parent.certificate)  # before any key is made (CAL-05)
    number = rollover.next_number(family)
    name = generation_name(base.family, number)
    config_dir = config.source.parent
    key: KeyLocation | None = base.key
    spec = None
    if args.new_key:
        current = base.key
        if current is None:
            icfg = config.issuers.get(base.family)
            if icfg is None:
                raise CLIError(f"{base.name}: no key location in the registry or the config")
            current = KeyLocation.of_spec(config.signers[icfg.signer], config_dir)
        key = rollover.next_key_location(current, name)
        spec = key.spec(name, config_dir)
        private = rollover.make_key(spec, args.key_type or rollover.key_type_of(base.certificate.public_key()))
        public = private.public_key()
    else:
        public = rollover.issuer_public_key(base.certificate)
    try:
        record = rollover.issuing_generation(base, number, parent, parent_key.key, public, key, now, args.validity_days)
        details: dict[str, object] = {"from": base.name, "parent": parent.name}
        details["key"] = key.describe() if key else "the family's signer"
        await AuthorityStore(ca.db).add(
            record, AuditEvent(f"cli:{args.operator}", "ca.rollover", f"ca/{name}", details)
        )
    except BaseException:
        if spec is not None:
            _discard(spec)
        raise
    print(_describe(name, record))
    print(f"  key: {key.describe() if args.new_key and key else 'the same as ' + base.name}")
    print(f"  issues nothing until: tetra ca activate {name} [--at TIME]")
    return 0


async def _root_rollover(
    args: argparse.Namespace,
    ca: CertificateAuthority,
    config: ServerConfig,
    family: list[Authority],
    base: Authority,
    now: dt.datetime,
) -> int:
    from ca.audit import AuditEvent
    from ca.authorities import rollover
    from ca.authorities.model import generation_name
    from ca.authorities.store import AuthorityStore
    from ca.hierarchy import fingerprint_sha256

    if args.same_key:
        raise CLIError(f"{base.name} is a root: a root rolls over to a new key (--new-key)")
    if not args.out_dir:
        raise CLIError("a root rollover writes its three certificates to --out-dir DIR")
    old_key = open_parent_key(args, base.certificate)  # the old root's key, before anything is made
    number = rollover.next_number(family)
    name = generation_name(base.family, number)
    out = Path(args.out_dir)
    files = {kind: out / f"{name}-{kind}.pem" for kind in ("newWithNew", "newWithOld", "oldWithNew")}
    taken = [str(p) for p in files.values() if p.exists()]
    if taken:
        raise CLIError(f"{taken[0]} already exists")
    location = _root_key_location(args, config.source.parent, out, name)
    spec = location.spec(name, config.source.parent)
    made: list[Path] = []
    try:
        new_key = rollover.make_key(spec, args.key_type or rollover.key_type_of(base.certificate.public_key()))
        links = rollover.root_links(base.certificate, old_key.key, new_key, now, args.validity_days)
        record = rollover.root_generation(base, number, links, location, now)
        out.mkdir(parents=True, exist_ok=True)
        for kind, pem in links.pem().items():
            files[kind].write_bytes(pem)
            made.append(files[kind])
        details: dict[str, object] = {"from": base.name, "key": location.describe()}
        await AuthorityStore(ca.db).add(
            record, AuditEvent(f"cli:{args.operator}", "ca.rollover", f"ca/{name}", details)
        )
    except BaseException:
        for path in made:
            path.unlink(missing_ok=True)
        _discard(spec)
        raise
    print(_describe(name, record))
    for kind, path in files.items():
        print(f"  {kind}: {path}")
    if location.backend == "software":
        print(f"  root key: {spec.key_file} (keep it offline)")
    print(f"  new root SHA-256 fingerprint: {fingerprint_sha256(links.new_with_new)}")
    print(f"  distribute the new root, then: tetra ca activate {name} [--at TIME]")
    return 0


def _root_key_location(args: argparse.Namespace, config_dir: Path, out: Path, name: str) -> KeyLocation:
    """Where the new root key goes: ``<out-dir>/<name>.key`` or the token object --pkcs11-uri names."""
    from ca.authorities.model import KeyLocation

    if args.pkcs11_uri:
        if not (args.pin_env or args.pin_file):
            raise CLIError("--pkcs11-uri needs --pin-env or --pin-file")
        return KeyLocation(
            "pkcs11",
            module=args.module,
            uri=args.pkcs11_uri,
            pin_env=args.pin_env,
            pin_file=config_relative(config_dir, args.pin_file),
        )
    if not (args.passphrase_env or args.passphrase_file):
        raise CLIError("the new root key file needs --passphrase-env or --passphrase-file")
    return KeyLocation(
        "software",
        key_file=config_relative(config_dir, str(out / f"{name}.key")),
        passphrase_env=args.passphrase_env,
        passphrase_file=config_relative(config_dir, args.passphrase_file),
    )


@on_ca_reading
async def ca_activate(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.authorities.activation import schedule_activation
    from ca.errors import CAError

    now = ca.clock.now()
    at = parse_time("--at", args.at) or now
    try:
        record = await schedule_activation(ca.db, args.name, at, now, f"cli:{args.operator}")
    except CAError as exc:
        raise CLIError(exc.detail) from None
    when = "now" if at <= now else f"{at:%Y-%m-%d %H:%M:%S} UTC"
    print(f"{args.name} issues for CA {record.family} from {when}")
    print("  running servers switch within a second of that time; the previous generation keeps its OCSP and CRLs")
    return 0


def add_commands(ca: Subcommands) -> None:
    """Mounted under `tetra ca` by server/cli/hierarchy.py."""
    p = add_config_option(
        ca.add_parser(
            "rollover",
            help="stage a CA's next generation (new certificate, same or new key)",
            description=(
                "Make the next generation of CA NAME, staged: published and announced (EST cacerts, SCEP "
                "GetNextCACert, CMP rootCaKeyUpdate) but issuing nothing until `tetra ca activate`. An issuing CA "
                "keeps its subject, path length, name constraints and validity length and is signed by its root "
                "(the parent key options). A root rolls over to a new key with the old root's key as the parent "
                "key, and writes newWithNew, newWithOld and oldWithNew (RFC 4210 4.4) to --out-dir."
            ),
        )
    )
    p.add_argument("name", help="the CA family (issuing-ca, or a root by its file stem: root)")
    p.add_argument("--same-key", action="store_true", help="certify the current key again (issuing CAs only)")
    p.add_argument(
        "--new-key", action="store_true", help="a new key of the current key's type, beside it (file or token)"
    )
    p.add_argument("--validity-days", type=int, default=None, help="default: the current certificate's length")
    g = p.add_argument_group("a root rollover: where the new root key goes (a file in --out-dir, or a token)")
    g.add_argument("--out-dir", default="", help="writes <gen>-newWithNew.pem, -newWithOld.pem, -oldWithNew.pem")
    add_new_key_options(g, key_type="", key_type_help="the new key's type (default: the current one's)")
    add_parent_key_options(p, who="parent CA (for a root rollover, the old root)")
    add_operator_option(p)
    p.set_defaults(func=ca_rollover)

    p = add_config_option(
        ca.add_parser(
            "activate",
            help="make a staged CA generation issue, now or at a set time",
            description=(
                "From --at on, CA generation NAME issues for its family; the generation before it stops issuing "
                "but keeps signing OCSP and CRLs for what it issued. Refused for an unknown, pending or revoked "
                "generation, and when its certificate has not begun or has expired by then."
            ),
        )
    )
    p.add_argument("name", help="the generation (issuing-ca.2)")
    p.add_argument("--at", default="now", help="ISO 8601 time with its zone (2027-01-31T12:00:00Z), or now (default)")
    add_operator_option(p)
    p.set_defaults(func=ca_activate)
