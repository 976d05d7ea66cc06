"""`tetra inventory` (also spelled `tetra certs`): every certificate the organisation has.

list, search, show, edit, export and import. Each command first mirrors what the CA has issued
since the last look (ca/inventory/sync.py), so it always includes the latest certificates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from server.cli import inventory_view as view
from server.cli.common import CLIError, add_config_option, add_operator_option, on_ca_reading

MAX_IMPORT_BYTES = 100 * 1024 * 1024

if TYPE_CHECKING:
    from ca.inventory.exchange import ImportRow
    from ca.inventory.model import InventoryFilter, InventoryRecord
    from ca.service import CertificateAuthority
    from server.cli.common import Subcommands
    from server.config import ServerConfig


def _filter(args: argparse.Namespace, now: dt.datetime, **extra: object) -> InventoryFilter:
    from ca.inventory.model import InventoryFilter, Source, Status

    if args.limit < 1:
        raise CLIError("--limit must be at least 1")
    for option in ("expiring", "not_seen_since", "key_size_below"):
        value = getattr(args, option)
        if value is not None and value < 0:
            raise CLIError(f"--{option.replace('_', '-')} must not be negative")
    return InventoryFilter(
        expiring_before=now + dt.timedelta(days=args.expiring) if args.expiring is not None else None,
        status=Status(args.status) if args.status else None,
        issuer=args.issuer,
        owner=args.owner,
        team=args.team,
        tag=args.tag,
        key_size_below=args.key_size_below,
        signature_algorithm=args.signature_algorithm,
        seen_at=args.seen_at,
        not_seen_since=now - dt.timedelta(days=args.not_seen_since) if args.not_seen_since is not None else None,
        source=Source(args.source) if args.source else None,
        profile=args.profile,
        protocol=args.protocol,
        now=now,
        order="expiry" if args.sort == "expiry" else "id",
        after_id=args.after,
        limit=args.limit + 1,  # one more than shown: a cut page is known and said
        **extra,  # type: ignore[arg-type]
    )


def _print(records: list[InventoryRecord], args: argparse.Namespace, now: dt.datetime) -> None:
    """One page in the chosen format; a cut page is said on stderr (stdout stays parseable)."""
    more = len(records) > args.limit
    records = records[: args.limit]
    if args.format == "json":
        print(json.dumps([view.as_dict(r, now) for r in records], indent=2))
    elif args.format == "csv":
        from ca.inventory.exchange import write_csv

        sys.stdout.write(write_csv(view.FIELDS, (view.csv_cells(r, now, with_der=False) for r in records)))
    else:
        for line in view.table_lines(records, now):
            print(line)
    if more:
        print(
            f"tetra: listed the first {args.limit} matching certificates (ids {records[0].id} to {records[-1].id}); "
            f"more match: repeat with --after {records[-1].id} for the next page",
            file=sys.stderr,
        )


@on_ca_reading
async def inventory_list(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    now = ca.clock.now()
    await ca.inventory.sync(now)
    _print(await ca.inventory.records(_filter(args, now)), args, now)
    return 0


@on_ca_reading
async def inventory_search(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    """A name (and every name under it), else a fingerprint prefix or a serial number."""
    from ca.inventory.model import InventoryFilter

    now = ca.clock.now()
    await ca.inventory.sync(now)
    text = args.text.strip()
    if not text:
        raise CLIError("search for what? give a name, a fingerprint or a serial")
    records = await ca.inventory.records(_filter(args, now, name=text))
    if not records:
        digits = text.lower().replace(":", "")
        if len(digits) >= 8 and all(ch in "0123456789abcdef" for ch in digits):
            found = await ca.inventory.find(digits)
            records = [found] if found else []
        if not records and all(ch in "0123456789abcdef" for ch in digits):
            serial = digits.lstrip("0") or "0"
            records = await ca.inventory.records(InventoryFilter(serial=serial, limit=args.limit + 1))
    if not records:
        print(f"nothing in the inventory matches {text!r}", file=sys.stderr)
    _print(records, args, now)
    return 0


@on_ca_reading
async def inventory_show(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    now = ca.clock.now()
    await ca.inventory.sync(now)
    record = await _find(ca, args.reference)
    if args.pem:
        sys.stdout.write(x509.load_der_x509_certificate(record.der).public_bytes(Encoding.PEM).decode())
        return 0
    seen = await ca.inventory.sightings(record.id)
    if args.format == "json":
        details = view.as_dict(record, now) | {
            "sightings": [
                {
                    "kind": s.kind,
                    "location": s.location,
                    "first_seen": s.first_seen.isoformat(),
                    "last_seen": s.last_seen.isoformat(),
                }
                for s in seen
            ]
        }
        print(json.dumps(details, indent=2))
    else:
        for line in view.detail_lines(record, seen, now):
            print(line)
    return 0


async def _find(ca: CertificateAuthority, reference: str) -> InventoryRecord:
    record = await ca.inventory.find(reference)
    if record is None:
        raise CLIError(
            f"no certificate {reference!r} in the inventory (give an id from `tetra inventory list` or a fingerprint)"
        )
    return record


@on_ca_reading
async def inventory_edit(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    from ca.inventory.model import Edit

    now = ca.clock.now()
    await ca.inventory.sync(now)
    record = await _find(ca, args.reference)
    replaces = (await _find(ca, args.replaces)).id if args.replaces else None
    change = Edit(
        owner=args.owner,
        team=args.team,
        application=args.application,
        renewal_method=args.renewal,
        add_tags=tuple(args.tag),
        remove_tags=tuple(args.untag),
        replaces_id=replaces,
    )
    edited = await ca.inventory.edit(record.id, change, actor=f"cli:{args.operator}", now=now)
    print(
        f"inventory {edited.id}: owner {edited.owner or '-'}, team {edited.team or '-'}, "
        f"application {edited.application or '-'}, renewal {edited.renewal_method or '-'}, "
        f"tags {', '.join(edited.tags) or '-'}"
    )
    return 0


@on_ca_reading
async def inventory_export(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    """Every matching certificate with the certificate itself, in pages of the store's reads, in
    a form `tetra inventory import` (here or on another Tetra) reads back."""
    from dataclasses import replace

    now = ca.clock.now()
    await ca.inventory.sync(now)
    flt = replace(_filter(args, now), limit=5000)
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    count = 0
    try:
        while True:
            page = await ca.inventory.records(flt, with_der=True)
            out.write(_export_page(page, now, args.format, first=count == 0, last=len(page) < flt.limit))
            count += len(page)
            if len(page) < flt.limit:
                break
            flt = replace(flt, after_id=page[-1].id)
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"exported {count} certificates to {args.out}", file=sys.stderr)
    return 0


@on_ca_reading
async def inventory_import(args: argparse.Namespace, ca: CertificateAuthority, config: ServerConfig) -> int:
    """Certificate files (PEM, DER, PKCS#7, PKCS#12, Java keystores) and exports (CSV, JSON) of
    another CA or of `tetra inventory export`. Every file is read before anything is stored: one
    bad file or row is named, and nothing is imported."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ca.inventory.model import NewEntry, Source

    passphrases = _passphrases(args.passphrase_file)
    entries: list[NewEntry] = []
    for path in args.files:
        for row in _read_import(Path(path), passphrases):
            entries.append(
                NewEntry(
                    der=row.certificate.public_bytes(Encoding.DER),
                    source=Source.IMPORTED,
                    owner=row.owner or args.owner,
                    team=row.team or args.team,
                    application=row.application or args.application,
                    tags=tuple(row.tags) + tuple(args.tag),
                    renewal_method=row.renewal_method or args.renewal,
                )
            )
    if not entries:
        raise CLIError("no certificates in " + ", ".join(args.files))
    placed = await ca.inventory.add(entries, actor=f"cli:{args.operator}", now=ca.clock.now())
    new = sum(p.created for p in placed)
    print(
        f"imported {len(placed)} certificates from {len(args.files)} file(s): "
        f"{new} new, {len(placed) - new} already in the inventory"
    )
    return 0


def _passphrases(path: str | None) -> list[bytes]:
    if not path:
        return []
    try:
        return [line for line in Path(path).read_bytes().splitlines() if line]
    except OSError as exc:
        raise CLIError(f"{path}: {exc.strerror}") from None


def _read_import(path: Path, passphrases: list[bytes]) -> list[ImportRow]:
    """A file's certificates as import rows: an export's own rows, or a container's certificates."""
    from ca.inventory.containers import NotCertificates, read_certificates
    from ca.inventory.exchange import ImportRow, read_export

    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise CLIError(f"{path}: larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MiB")
        data = path.read_bytes()
    except OSError as exc:
        raise CLIError(f"{path}: {exc.strerror}") from None
    try:
        if path.suffix.lower() in (".csv", ".json"):
            return read_export(data, name=str(path))
        container = read_certificates(data, passphrases=passphrases)
    except NotCertificates as exc:
        raise CLIError(f"{path}: {exc}, nothing imported") from None
    return [ImportRow(c, None, None, None, (), None) for c in container.certificates]


def _export_page(page: list[InventoryRecord], now: dt.datetime, form: str, *, first: bool, last: bool) -> str:
    """One page of an export: CSV rows (the header before the first), or JSON array members."""
    import base64

    if form == "csv":
        from ca.inventory.exchange import write_csv

        header = [*view.FIELDS, "der_base64"]
        text = write_csv(header, (view.csv_cells(r, now, with_der=True) for r in page))
        return text if first else text.split("\n", 1)[1]
    items = [json.dumps(view.as_dict(r, now) | {"der_base64": base64.b64encode(r.der).decode()}) for r in page]
    body = ",\n  ".join(items)
    text = ("[\n  " if first else (",\n  " if items else "")) + body
    return text + ("\n]\n" if last else "")


def _add_filters(p: argparse.ArgumentParser, *, formats: tuple[str, ...] = ("table", "json", "csv")) -> None:
    p.add_argument("--expiring", type=int, metavar="DAYS", help="ending within DAYS days (ended ones too)")
    p.add_argument("--status", choices=["valid", "expiring", "expired", "revoked"])
    p.add_argument("--issuer", help="a Tetra CA's name, or text in the issuer's name")
    p.add_argument("--owner")
    p.add_argument("--team")
    p.add_argument("--tag")
    p.add_argument("--key-size-below", type=int, metavar="BITS", help="RSA and DSA keys shorter than BITS")
    p.add_argument("--signature-algorithm", metavar="NAME", help="e.g. sha1WithRSAEncryption")
    p.add_argument("--seen-at", metavar="LOCATION", help="seen at an endpoint or path starting with this")
    p.add_argument("--not-seen-since", type=int, metavar="DAYS", help="deployed, but not seen for DAYS days")
    p.add_argument("--source", choices=["tetra", "imported", "discovered"])
    p.add_argument("--profile", help="Tetra's profile (certificates Tetra issued)")
    p.add_argument("--protocol", help="the protocol Tetra issued it through")
    p.add_argument("--sort", choices=["id", "expiry"], default="id")
    p.add_argument("--limit", type=int, default=1000, metavar="N", help="at most N rows (a page; default 1000)")
    p.add_argument("--after", type=int, metavar="ID", help="only records after inventory id ID (the next page)")
    p.add_argument("--format", choices=formats, default=formats[0])


def add_commands(sub: Subcommands) -> None:
    inventory = sub.add_parser(
        "inventory", aliases=["certs"], help="every certificate: issued here, imported, discovered"
    ).add_subparsers(dest="action", required=True)

    p = add_config_option(inventory.add_parser("list", help="certificates matching the filters"))
    _add_filters(p)
    p.set_defaults(func=inventory_list)

    p = add_config_option(
        inventory.add_parser("search", help="by name (and the names under it), fingerprint or serial")
    )
    p.add_argument("text")
    _add_filters(p)
    p.set_defaults(func=inventory_search)

    p = add_config_option(inventory.add_parser("show", help="one certificate: every field and where it was seen"))
    p.add_argument("reference", help="inventory id or fingerprint")
    p.add_argument("--pem", action="store_true", help="print the certificate")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=inventory_show)

    p = add_config_option(inventory.add_parser("edit", help="owner, team, application, renewal method, tags"))
    p.add_argument("reference", help="inventory id or fingerprint")
    p.add_argument("--owner", help="'' clears it")
    p.add_argument("--team")
    p.add_argument("--application")
    p.add_argument("--renewal", choices=["acme", "est", "scep", "cmp", "manual"], help="how it is renewed")
    p.add_argument("--tag", action="append", default=[], help="add a tag (repeatable)")
    p.add_argument("--untag", action="append", default=[], help="remove a tag (repeatable)")
    p.add_argument("--replaces", metavar="REFERENCE", help="the certificate this one replaces")
    add_operator_option(p)
    p.set_defaults(func=inventory_edit)

    p = add_config_option(inventory.add_parser("import", help="certificate files and other CAs' exports"))
    p.add_argument("files", nargs="+", metavar="FILE", help="PEM, DER, PKCS#7, PKCS#12, JKS; .csv or .json exports")
    p.add_argument("--passphrase-file", metavar="FILE", help="passphrases to try on PKCS#12 and keystores, one a line")
    for field in ("owner", "team", "application"):
        p.add_argument(f"--{field}", help=f"{field} for certificates whose file does not say")
    p.add_argument("--renewal", choices=["acme", "est", "scep", "cmp", "manual"])
    p.add_argument("--tag", action="append", default=[], help="add a tag (repeatable)")
    add_operator_option(p)
    p.set_defaults(func=inventory_import)

    p = add_config_option(inventory.add_parser("export", help="matching certificates with the certificate itself"))
    _add_filters(p, formats=("csv", "json"))
    p.add_argument("--out", type=Path, help="write here instead of stdout")
    p.set_defaults(func=inventory_export, limit=1000)
