"""Setting a CA up and running it: `tetra init`, `tetra serve`, `tetra db upgrade`, `tetra db copy`."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

from server.cli.common import CLIError, add_config_option, read_config

if TYPE_CHECKING:
    from server.cli.common import Subcommands


def init(args: argparse.Namespace) -> int:
    from ca.store.copy import masked, table_with_rows
    from ca.store.tables import core_metadata
    from protocols.registry import PROTOCOLS
    from server.config import Listen
    from server.demo import init_demo

    database_url = os.environ.get("TETRA_DATABASE__URL", "")
    # (A SQLite file named there is relative to the config; opening it from here would create one.)
    occupied = table_with_rows(database_url, core_metadata()) if database_url.startswith("postgresql") else None
    if occupied is not None:
        raise CLIError(
            f"database {masked(database_url)} already holds records (table {occupied}): "
            "give tetra init an empty database"
        )
    result = asyncio.run(
        init_demo(
            Path(args.dir),
            http=Listen.parse(args.http, "--http"),
            https=Listen.parse(args.https, "--https"),
            hostnames=args.hostname or ["localhost", "127.0.0.1"],
            protocols=sorted(PROTOCOLS),
            # As `tetra serve` will read it: a PostgreSQL database named in the environment
            # (docs/postgresql.md) is where the CA's schema and first records go.
            database_url=database_url,
        )
    )
    config = read_config(str(result.config))
    print(f"Created a demo CA in {args.dir}")
    print(f"  config:                   {result.config}")
    print(f"  database:                 {masked(config.database_url)}")
    print(f"  root SHA-256 fingerprint: {result.root_fingerprint}")
    if config.https_url and "acme" in config.protocols:
        print(f"  ACME directory:           {config.https_url}/acme/directory")
    print(f"  admin's password:         {result.config.parent / 'secrets' / 'admin-password'}")
    print(f"  admin's API token:        {result.config.parent / 'secrets' / 'api-token'}")
    if config.http_url and "scep" in config.protocols:
        challenge = result.config.parent / "secrets" / "scep-challenge"
        print(f"  SCEP URL and challenge:   {config.http_url}/scep  {challenge}")
    if config.http_url and "cmp" in config.protocols:
        print(f"  CMP URL:                  {config.http_url}/.well-known/cmp  (tetra cmp secret add REF)")
    if config.http:
        # Fetched over plain HTTP on purpose: the fingerprint is what makes the root trustworthy.
        print("Check the root from a client before you trust it (the fingerprint must match):")
        roots = f"http://{config.http.host}:{config.http.port}/roots.pem"
        print(f"  curl -s {roots} | openssl x509 -noout -fingerprint -sha256")
    print(f"Start it with: tetra serve --config {result.config}")
    return 0


def serve(args: argparse.Namespace) -> int:
    from server.app import serve as run_server

    config = read_config(args.config)
    if args.workers is not None:
        if args.workers < 1:
            raise CLIError("--workers must be at least 1")
        config = dataclasses.replace(config, workers=args.workers)
    run_server(config)
    return 0


def db_upgrade(args: argparse.Namespace) -> int:
    from ca.store.migrate import upgrade

    config = read_config(args.config)
    before, after = upgrade(config.database_url)
    if before is None:
        print(f"created the Tetra schema (revision {after})")
    elif before != after:
        print(f"upgraded the schema from revision {before} to {after}")
    else:
        print(f"the schema is already current (revision {after})")
    return 0


def db_copy(args: argparse.Namespace) -> int:
    import protocols.registry  # noqa: F401  (declares every protocol's tables on the metadata)
    from ca.store.copy import copy_database
    from ca.store.tables import core_metadata

    report = copy_database(args.source, args.destination, core_metadata())
    print(f"copied {report.source} to {report.destination} (schema revision {report.revision})")
    if report.schema_created:
        print("  the destination was empty: created the schema first")
    width = max(len(name) for name in report.rows)
    for name, count in report.rows.items():
        print(f"  {name:<{width}}  {count:>9} rows")
    print(f"verified: every row equal in both databases; audit chain intact ({report.audit_events} events)")
    return 0


def add_commands(sub: Subcommands) -> None:
    p = sub.add_parser("init", help="create a demo CA hierarchy, TLS certificate, database and config")
    p.add_argument("--dir", required=True)
    p.add_argument("--http", default="127.0.0.1:8080")
    p.add_argument("--https", default="127.0.0.1:8443")
    p.add_argument("--hostname", action="append", help="name for the TLS certificate (repeatable)")
    p.set_defaults(func=init)

    p = add_config_option(sub.add_parser("serve", help="run the server"))
    p.add_argument(
        "--workers", type=int, default=None, help="server processes sharing the ports (overrides [server] workers)"
    )
    p.set_defaults(func=serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    add_config_option(db.add_parser("upgrade", help="apply schema migrations")).set_defaults(func=db_upgrade)
    p = db.add_parser("copy", help="copy the whole database into an empty one (SQLite to PostgreSQL), verified")
    p.add_argument("--from", dest="source", metavar="URL", required=True, help="database to copy (read only)")
    p.add_argument("--to", dest="destination", metavar="URL", required=True, help="empty database to fill")
    p.set_defaults(func=db_copy)
