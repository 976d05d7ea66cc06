"""`tetra ca csr` and `tetra ca import`: an issuing CA certified by an external root (a company's
ADCS, an offline root Tetra does not hold).

`ca csr` makes the key (a file or a token) and a CSR, and registers a *pending* generation of the
CA family: generation 1 of a new CA, or the next one of an existing CA (`--rollover`). `ca import`
takes the certificate the external root signed, checks it (ca/authorities/import_check.py), and
attaches it with the chain above it; the root is registered when new, so /roots.pem and the trust
list carry it, and the generation issues from --activate-at. A refused import changes nothing but
the audit log, which names the reason (CAL-04).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from ca.audit import AuditEvent
from ca.authorities.import_check import CheckedPath, ImportRefused, check_import
from ca.authorities.model import Authority, KeyLocation, Kind, generation_name
from ca.errors import CAError, ConfigError
from server.cli.common import (
    CLIError,
    add_config_option,
    add_operator_option,
    config_relative,
    parse_time,
    read_config,
)
from server.cli.new_key import NewKey, add_new_key_options, make_new_key, new_key_secret

if TYPE_CHECKING:
    from ca.authorities.store import AuthorityStore
    from ca.store.db import Database
    from server.cli.common import Subcommands
    from server.config import ServerConfig

T = TypeVar("T")
_FAMILY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,47}")  # generation names add ".N"; no dot here


# -- the registry, as a command opens it ------------------------------------------------------
async def _on_registry(config: ServerConfig, work: Callable[[AuthorityStore, Database], Awaitable[T]]) -> T:
    """Run ``work`` on the registry with the config's CAs registered in it (as `build_ca` does),
    so a rollover of a configured CA finds its generation 1 even before a server has run."""
    from ca.authorities.store import AuthorityStore
    from ca.store.migrate import require_current
    from server.ca_registry import config_authorities
    from server.wiring import load_certificates, open_database

    db = open_database(config)
    try:
        await require_current(db)
        store = AuthorityStore(db)
        for record in config_authorities(config, load_certificates, db.clock.now()):
            await store.ensure(record)
        return await work(store, db)
    finally:
        await db.close()


# -- tetra ca csr -----------------------------------------------------------------------------
async def _next_generation(store: AuthorityStore, config: ServerConfig, family: str, rollover: bool) -> int:
    """Generation 1 of a new CA, or the next of an existing one when the operator says --rollover."""
    members = [a for a in await store.all() if a.family == family]
    if any(a.kind is Kind.ROOT for a in members):
        raise CLIError(f"{family} is a root CA; name the issuing CA the external root certifies")
    pending = next((a for a in members if a.der is None and a.revoked_at is None), None)
    if pending is not None:
        raise CLIError(
            f"CA {family} already has generation {pending.name} awaiting its certificate: "
            f"import it with `tetra ca import --name {family}` first"
        )
    if members or family in config.issuers:
        if not rollover:
            latest = members[-1].name if members else family
            raise CLIError(
                f"CA {family} already exists (latest generation {latest}); "
                "to make its next generation under an external root (a rollover), add --rollover"
            )
        return max((a.generation for a in members), default=1) + 1
    if rollover:
        raise CLIError(f"--rollover: there is no CA named {family} to roll over")
    return 1


def _subject(text: str) -> x509.Name:
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError:
        raise CLIError(f"--subject {text!r}: not an RFC 4514 name such as 'CN=Example Issuing CA,O=Example'") from None
    if not name.rdns:
        raise CLIError("--subject: the CA needs a subject name, such as 'CN=Example Issuing CA,O=Example'")
    return name


def _make_csr(subject: x509.Name, key: NewKey) -> x509.CertificateSigningRequest:
    """The request an external root signs: the subject and, as a hint its operator may copy, the
    CA extensions Tetra needs (cA=TRUE, keyCertSign, cRLSign)."""
    from ca.hierarchy import CA_KEY_USAGE
    from ca.keys import default_hash

    public = key.private.public_key()
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
    )
    return builder.sign(key.private, default_hash(public))


def _write_csr(out: Path, request: x509.CertificateSigningRequest) -> None:
    try:
        out.write_bytes(request.public_bytes(Encoding.PEM))
    except OSError as exc:
        raise CLIError(f"{out}: cannot write the CSR: {exc.strerror}") from None


def _key_location(args: argparse.Namespace, config: ServerConfig, key: NewKey) -> KeyLocation:
    if key.key_file is None:
        pin_file = config_relative(config.source.parent, args.pin_file)
        return KeyLocation("pkcs11", module=args.module, uri=args.pkcs11_uri, pin_env=args.pin_env, pin_file=pin_file)
    passphrase_file = config_relative(config.source.parent, args.passphrase_file)
    return KeyLocation(
        "software",
        key_file=config_relative(config.source.parent, key.key_file),
        passphrase_env=args.passphrase_env,
        passphrase_file=passphrase_file,
    )


def ca_csr(args: argparse.Namespace) -> int:
    """Checks come first (name, subject, where the key goes, its secret, the registry); the key
    is made last, and removed again with the CSR if registering the generation fails."""
    config = read_config(args.config)
    family = args.name
    if not _FAMILY.fullmatch(family):
        raise CLIError(f"--name {family!r}: letters, digits, '-' and '_' only (at most 48)")
    subject = _subject(args.subject)
    if bool(args.pkcs11_uri) == bool(args.out_dir):
        raise CLIError("say where the new key goes: --out-dir DIR (a key file) or --pkcs11-uri URI (a token)")
    out = Path(args.out)
    if out.exists():
        raise CLIError(f"{out} already exists")
    if not out.parent.is_dir():
        raise CLIError(f"{out.parent}: no such directory for the CSR")
    secret = new_key_secret(args)
    generation = asyncio.run(_on_registry(config, lambda s, _: _next_generation(s, config, family, args.rollover)))
    name = generation_name(family, generation)
    key = make_new_key(args, Path(args.out_dir or ".") / f"{name}.key", secret)
    try:
        _write_csr(out, _make_csr(subject, key))
        location = _key_location(args, config, key)

        async def register(store: AuthorityStore, db: Database) -> None:
            record = Authority(name, family, generation, Kind.ISSUING, None, None, location, None, db.clock.now())
            details: dict[str, object] = {"subject": subject.rfc4514_string(), "key": location.describe()}
            await store.add(record, AuditEvent(f"cli:{args.operator}", "ca.csr_created", f"ca/{name}", details))

        asyncio.run(_on_registry(config, register))
    except BaseException:
        key.remove()
        out.unlink(missing_ok=True)  # refused above when it was there before
        raise
    what = "a new CA" if generation == 1 else f"rollover: generation {generation} of CA {family}"
    print(f"CSR for {name} ({what}): {out}")
    print(f"key: {location.describe()}")
    print(f"when the external root has signed it: tetra ca import --name {family} --cert FILE [--chain FILE]")
    return 0


# -- tetra ca import --------------------------------------------------------------------------
def _read_certificates(path: str, what: str) -> list[x509.Certificate]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ImportRefused(f"{what} {path}: cannot read: {exc.strerror}") from None
    try:
        return (
            x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data else [x509.load_der_x509_certificate(data)]
        )
    except ValueError:
        raise ImportRefused(f"{what} {path}: not a PEM or DER certificate") from None


async def _pending_key(pending: Authority, config: ServerConfig) -> PublicKeyTypes:
    """The public half of the pending generation's key, opened as the server will open it."""
    from ca.signers.registry import open_signer

    if pending.key is None:
        raise ImportRefused(f"{pending.name} has no key location in the registry")
    try:
        signer = await open_signer(pending.key.spec(pending.name, config.source.parent))
    except (CAError, ConfigError) as exc:
        raise ImportRefused(f"the key of {pending.name} does not open: {getattr(exc, 'detail', exc)}") from None
    try:
        return signer.public_key()
    finally:
        await signer.close()


def _new_root(checked: CheckedPath, records: list[Authority], family: str, now: dt.datetime) -> Authority | None:
    """A registry row for the external root, unless it is registered already (a config root or
    the root of an earlier import): named FAMILY-root, or FAMILY-root-2... when that is taken."""
    der = checked.root.public_bytes(Encoding.DER)
    if any(r.kind is Kind.ROOT and r.der == der for r in records):
        return None
    taken = {r.name for r in records}
    candidates = [f"{family}-root", *(f"{family}-root-{i}" for i in range(2, len(taken) + 3))]
    name = next(n for n in candidates if n not in taken)
    return Authority(name, name, 1, Kind.ROOT, None, der, None, checked.root.not_valid_before_utc, now)


async def _import(args: argparse.Namespace, config: ServerConfig, store: AuthorityStore, db: Database) -> str:
    """Check, then attach; raises ImportRefused with the reason, or returns what to print."""
    from server.wiring import load_certificates

    now = db.clock.now()
    at = parse_time("--activate-at", args.activate_at) or now
    records = await store.all()
    family = [a for a in records if a.family == args.name and a.kind is Kind.ISSUING]
    pending = next((a for a in family if a.der is None and a.revoked_at is None), None)
    if pending is None:
        raise ImportRefused(f"CA {args.name} has no generation awaiting a certificate (make one with `tetra ca csr`)")
    cert = _read_certificates(args.cert, "--cert")[0]
    chain = _read_certificates(args.chain, "--chain") if args.chain else []
    roots = [c for p in config.roots for c in load_certificates(p)]
    roots += [r.certificate for r in records if r.kind is Kind.ROOT and r.der is not None and r.revoked_at is None]
    checked = check_import(cert, await _pending_key(pending, config), chain, roots, now)
    if at >= cert.not_valid_after_utc:
        raise ImportRefused(f"--activate-at {at:%Y-%m-%d %H:%M:%S} UTC is after the certificate expires")
    root = _new_root(checked, records, args.name, now)
    root_name = root.name if root else next(r.name for r in records if r.der == checked.root.public_bytes(Encoding.DER))
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in checked.intermediates)
    parent = None if checked.intermediates else root_name
    der = cert.public_bytes(Encoding.DER)
    actor = f"cli:{args.operator}"
    if not await store.attach_certificate(pending.name, der, pem, actor, root=root, activate_at=at, parent=parent):
        raise CLIError(f"{pending.name} is no longer awaiting a certificate (imported or revoked meanwhile)")
    lines = [f"imported {pending.name}: {cert.subject.rfc4514_string()}, until {cert.not_valid_after_utc:%Y-%m-%d}"]
    if root is not None:
        lines.append(f"registered root {root.name}: {checked.root.subject.rfc4514_string()} (now in /roots.pem)")
    lines.append(f"{pending.name} issues for CA {args.name} from {at:%Y-%m-%d %H:%M:%S} UTC")
    return "\n".join(lines)


async def _import_or_audit(args: argparse.Namespace, config: ServerConfig, store: AuthorityStore, db: Database) -> str:
    from ca.store.repositories import AuditRepository

    try:
        return await _import(args, config, store, db)
    except ImportRefused as exc:
        details = {"reason": exc.reason, "certificate": args.cert}
        await AuditRepository(db).append(
            AuditEvent(f"cli:{args.operator}", "ca.import_refused", f"ca/{args.name}", details)
        )
        raise CLIError(f"import refused: {exc.reason}") from None


def ca_import(args: argparse.Namespace) -> int:
    config = read_config(args.config)
    parse_time("--activate-at", args.activate_at)  # a malformed time is an option error, before the registry is opened
    print(asyncio.run(_on_registry(config, lambda store, db: _import_or_audit(args, config, store, db))))
    return 0


def add_commands(ca: Subcommands) -> None:
    p = ca.add_parser("csr", help="a key and a CSR for an issuing CA an external root will certify")
    add_config_option(p)
    add_operator_option(p)
    p.add_argument("--name", required=True, help="the CA family (what profiles name as issuer)")
    p.add_argument("--subject", required=True, help="the CA's subject, RFC 4514: 'CN=Example Issuing CA,O=Example'")
    p.add_argument("--out", required=True, help="where to write the CSR (PEM)")
    p.add_argument("--out-dir", default="", help="make the key as an encrypted file NAME.key here")
    p.add_argument("--rollover", action="store_true", help="the CA exists: make its next generation")
    add_new_key_options(p)
    p.set_defaults(func=ca_csr)

    p = ca.add_parser("import", help="the certificate an external root signed for a `ca csr` key")
    add_config_option(p)
    add_operator_option(p)
    p.add_argument("--name", required=True, help="the CA family given to `ca csr`")
    p.add_argument("--cert", required=True, help="the CA certificate (PEM or DER)")
    p.add_argument("--chain", default="", help="the certificates above it (PEM), ending with the external root")
    p.add_argument("--activate-at", default="now", help="when it starts issuing: ISO 8601 (UTC if no zone) or 'now'")
    p.set_defaults(func=ca_import)
