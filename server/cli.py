"""The `tetra` command. Errors are one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from ca.errors import CAError, ConfigError
from ca.keys import KEY_SPECS
from server.config import Listen, ServerConfig

DEFAULT_CONFIG = os.environ.get("TETRA_CONFIG", "var/tetra.toml")


class CLIError(Exception):
    """A one-line message for the operator."""


def read_config(path: str) -> ServerConfig:
    from server.wiring import read_config as load

    return load(Path(path))


async def _with_ca(args: argparse.Namespace, work: Callable[[Any], Awaitable[int]]) -> int:
    from ca.revocation.pointers import install_pointers
    from ca.revocation.settings import CrlSettings
    from ca.store.migrate import require_current
    from server.wiring import build_ca

    config = read_config(args.config)
    ca = await build_ca(config)
    try:
        await require_current(ca.db)
        # What a certificate issued here points at (CRL partition, delta CRL) must match what
        # the server would have put there.
        await install_pointers(ca, config.protocol_settings.get("crl") or CrlSettings())
        return await work(ca)
    finally:
        await ca.close()


# -- init / serve / db ------------------------------------------------------------------
def cmd_init(args: argparse.Namespace) -> int:
    from protocols.registry import PROTOCOLS
    from server.demo import init_demo

    result = asyncio.run(
        init_demo(
            Path(args.dir),
            http=Listen.parse(args.http, "--http"),
            https=Listen.parse(args.https, "--https"),
            hostnames=args.hostname or ["localhost", "127.0.0.1"],
            protocols=sorted(PROTOCOLS),
        )
    )
    print(f"Created a demo CA in {args.dir}")
    print(f"  config:                 {result.config}")
    print(f"  root SHA-256 fingerprint: {result.root_fingerprint}")
    print(f"Start it with: tetra serve --config {result.config}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from server.app import serve

    config = read_config(args.config)
    if args.workers is not None:
        if args.workers < 1:
            raise CLIError("--workers must be at least 1")
        config = dataclasses.replace(config, workers=args.workers)
    serve(config)
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from ca.store.migrate import upgrade

    config = read_config(args.config)
    upgrade(config.database_url)
    print("database schema is current")
    return 0


# -- ca ---------------------------------------------------------------------------------
def cmd_ca_list(args: argparse.Namespace) -> int:
    from ca.hierarchy import fingerprint_sha256
    from server.wiring import load_certificates

    config = read_config(args.config)
    for path in config.roots:
        for cert in load_certificates(path):
            print(f"root      {cert.subject.rfc4514_string()}  sha256 {fingerprint_sha256(cert)}")
    for name, icfg in config.issuers.items():
        cert = load_certificates(icfg.certificate)[0]
        default = " (default)" if name == config.default_issuer else ""
        print(
            f"issuer    {name}{default}  {cert.subject.rfc4514_string()}  "
            f"signer {icfg.signer} ({config.signers[icfg.signer].backend})  "
            f"until {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    return 0


def cmd_ca_show(args: argparse.Namespace) -> int:
    from ca.hierarchy import fingerprint_sha256
    from server.wiring import load_certificates

    config = read_config(args.config)
    name = args.name or config.default_issuer
    if name not in config.issuers:
        raise CLIError(f"no issuer named {name!r} (have: {', '.join(config.issuers)})")
    cert = load_certificates(config.issuers[name].certificate)[0]
    print(f"issuer:      {name}")
    print(f"subject:     {cert.subject.rfc4514_string()}")
    print(f"serial:      {cert.serial_number:x}")
    print(f"valid:       {cert.not_valid_before_utc:%Y-%m-%d %H:%M} .. {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    print(f"sha256:      {fingerprint_sha256(cert)}")
    for path in config.roots:
        for root in load_certificates(path):
            print(f"root:        {root.subject.rfc4514_string()}")
            print(f"root sha256: {fingerprint_sha256(root)}")
    return 0


def _load_private_key(path: str, passphrase_env: str, passphrase_file: str) -> Any:
    from ca.signers.software import load_encrypted_key, read_secret

    secret = read_secret(passphrase_env, passphrase_file, f"{path} passphrase")
    return load_encrypted_key(Path(path), secret)


def _new_key(args: argparse.Namespace, out_key: Path) -> Any:
    """Generate the CA key in software (encrypted file) or on a PKCS#11 token."""
    if args.pkcs11_uri:
        from ca.signers.pkcs11 import Pkcs11Signer, generate_token_key
        from ca.signers.software import read_secret

        pin = read_secret(args.pin_env, args.pin_file, "PKCS#11 PIN")
        generate_token_key(args.module, args.pkcs11_uri, args.key_type, pin)
        return Pkcs11Signer.open_blocking("new-ca", args.module, args.pkcs11_uri, pin)
    from ca.keys import generate_private_key
    from ca.signers.software import read_secret, save_encrypted_key

    key = generate_private_key(args.key_type)
    save_encrypted_key(key, out_key, read_secret(args.passphrase_env, args.passphrase_file, "key passphrase"))
    return key


def cmd_ca_init_root(args: argparse.Namespace) -> int:
    from ca.hierarchy import CAProfile, create_root, fingerprint_sha256

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / f"{args.name}.pem", out / f"{args.name}.key"
    if cert_path.exists():
        raise CLIError(f"{cert_path} already exists")
    key = _new_key(args, key_path)
    private = key.private_key() if hasattr(key, "run") else key
    profile = CAProfile(args.common_name or args.name, args.organization, args.validity_days, args.path_length)
    cert = create_root(profile, private)
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    print(f"root certificate: {cert_path}")
    if not args.pkcs11_uri:
        print(f"root key:         {key_path} (keep it offline)")
    print(f"root SHA-256 fingerprint: {fingerprint_sha256(cert)}")
    return 0


def cmd_ca_init_intermediate(args: argparse.Namespace) -> int:
    from ca.hierarchy import CAProfile, create_intermediate, fingerprint_sha256
    from server.wiring import load_certificates

    parent = load_certificates(Path(args.parent_cert))[0]
    parent_key = _load_private_key(args.parent_key, args.parent_passphrase_env, args.parent_passphrase_file)
    if parent_key.public_key() != parent.public_key():
        raise CLIError(f"{args.parent_key} is not the key of {args.parent_cert}")
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / f"{args.name}.pem", out / f"{args.name}.key"
    if cert_path.exists():
        raise CLIError(f"{cert_path} already exists")
    key = _new_key(args, key_path)
    public = key.public_key()
    profile = CAProfile(
        args.common_name or args.name,
        args.organization,
        args.validity_days,
        args.path_length,
        tuple(args.permitted_dns or ()),
        tuple(args.excluded_dns or ()),
    )
    cert = create_intermediate(profile, public, parent, parent_key)
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    print(f"intermediate certificate: {cert_path}  sha256 {fingerprint_sha256(cert)}")
    if args.add_to_config:
        _append_issuer(Path(args.add_to_config), args, cert_path, key_path)
        print(f"added issuer {args.name} to {args.add_to_config}")
    return 0


def _append_issuer(config_path: Path, args: argparse.Namespace, cert_path: Path, key_path: Path) -> None:
    read_config(str(config_path))  # refuse to edit a config that does not load
    lines = [f"\n[signers.{args.name}]"]
    if args.pkcs11_uri:
        lines += ['backend = "pkcs11"', f'module = "{args.module}"', f'uri = "{args.pkcs11_uri}"']
        lines += [f'pin_env = "{args.pin_env}"'] if args.pin_env else [f'pin_file = "{args.pin_file}"']
    else:
        lines += ['backend = "software"', f'key_file = "{key_path.resolve()}"']
        lines += (
            [f'passphrase_env = "{args.passphrase_env}"']
            if args.passphrase_env
            else [f'passphrase_file = "{Path(args.passphrase_file).resolve()}"']
        )
    lines += [f"\n[issuers.{args.name}]", f'certificate = "{cert_path.resolve()}"', f'signer = "{args.name}"', ""]
    with config_path.open("a") as out:
        out.write("\n".join(lines))


# -- requests / issue / revoke / certs / audit ----------------------------------------------
def cmd_requests(args: argparse.Namespace) -> int:
    async def work(ca: Any) -> int:
        if args.action == "list":
            for r in await ca.requests.list(status=args.status):
                print(f"{r.id:>6}  {r.status:<9} {r.protocol:<5} {r.profile:<14} {r.requester:<24} {','.join(r.sans)}")
        elif args.action == "approve":
            issued = await ca.approve(args.id, operator=args.operator)
            print(f"approved request {args.id}: issued serial {issued.certificate.serial_number:x}")
        else:
            await ca.reject(args.id, operator=args.operator, note=args.note or "")
            print(f"rejected request {args.id}")
        return 0

    return asyncio.run(_with_ca(args, work))


def cmd_issue(args: argparse.Namespace) -> int:
    from ca.csr import enrollment_from_csr, parse_csr
    from ca.enrollment import AuthMethod, InventoryFields, Issued, Requester

    try:
        data = Path(args.csr).read_bytes() if args.csr != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise CLIError(f"{args.csr}: {exc.strerror}") from None

    async def work(ca: Any) -> int:
        csr = parse_csr(data)
        request = enrollment_from_csr(
            csr,
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
        pem = outcome.certificate.public_bytes(Encoding.PEM) + b"".join(
            c.public_bytes(Encoding.PEM) for c in outcome.chain
        )
        if args.out:
            Path(args.out).write_bytes(pem)
            print(f"issued serial {outcome.certificate.serial_number:x} -> {args.out}", file=sys.stderr)
        else:
            sys.stdout.write(pem.decode())
        return 0

    return asyncio.run(_with_ca(args, work))


def _parse_serial(text: str) -> int:
    cleaned = text.replace(":", "").lower().removeprefix("0x")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise CLIError(f"serial {text!r} is not hexadecimal") from None


def cmd_revoke(args: argparse.Namespace) -> int:
    serial = _parse_serial(args.serial)

    async def work(ca: Any) -> int:
        record = await ca.find_by_serial(serial, args.issuer)
        revoked = await ca.revoke(record.issuer, serial, args.reason, requester=f"cli:{args.operator}")
        print(
            f"revoked {revoked.issuer}/{revoked.serial_hex} ({revoked.revocation_reason}) "
            f"at {revoked.revoked_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        return 0

    return asyncio.run(_with_ca(args, work))


def cmd_certs_list(args: argparse.Namespace) -> int:
    from ca.store.repositories import CertificateFilter

    async def work(ca: Any) -> int:
        before = None
        if args.expiring is not None:
            before = ca.clock.now() + dt.timedelta(days=args.expiring)
        records = await ca.certificates.list(
            CertificateFilter(
                status=args.status,
                profile=args.profile,
                protocol=args.protocol,
                expiring_before=before,
                limit=args.limit,
                issuer=args.issuer,
            )
        )
        if args.format == "json":
            print(
                json.dumps(
                    [
                        {
                            "id": r.id,
                            "issuer": r.issuer,
                            "serial": r.serial_hex,
                            "status": r.status,
                            "subject": r.subject,
                            "sans": list(r.sans),
                            "not_before": r.not_before.isoformat(),
                            "not_after": r.not_after.isoformat(),
                            "key": r.key_algorithm,
                            "profile": r.profile,
                            "protocol": r.protocol,
                            "requester": r.requester,
                            "fingerprint": r.fingerprint,
                            "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
                            "revocation_reason": r.revocation_reason,
                            "owner": r.owner,
                            "team": r.team,
                            "application": r.application,
                            "location": r.location,
                        }
                        for r in records
                    ],
                    indent=2,
                )
            )
            return 0
        print(f"{'serial':<34} {'status':<8} {'not after':<17} {'profile':<13} {'proto':<5} names")
        for r in records:
            print(
                f"{r.serial_hex:<34} {r.status:<8} {r.not_after:%Y-%m-%d %H:%M} {r.profile:<13} "
                f"{r.protocol:<5} {','.join(r.sans) or r.subject}"
            )
        return 0

    return asyncio.run(_with_ca(args, work))


def cmd_audit_verify(args: argparse.Namespace) -> int:
    async def work(ca: Any) -> int:
        report = await ca.audit.verify()
        if report.ok:
            print(f"audit log intact: {report.events} events, chain verified")
            return 0
        for problem in report.problems:
            print(f"audit: {problem}", file=sys.stderr)
        print(f"audit log TAMPERED: {len(report.problems)} problem(s) in {report.events} events", file=sys.stderr)
        return 1

    return asyncio.run(_with_ca(args, work))


# -- acme (ACME engineer's block) -----------------------------------------------------------
def cmd_acme_eab_create(args: argparse.Namespace) -> int:
    """An EAB key for `newAccount` (RFC 8555 §7.3.4): HS256, printed as cert-manager wants it."""
    from protocols.acme.b64 import b64e

    async def work(ca: Any) -> int:
        if args.profile and args.profile not in ca.profiles:
            raise CLIError(f"no profile named {args.profile!r}")
        key_id, secret = await ca.credentials.create_mac_key(
            "acme", key_id=args.key_id or None, profile=args.profile or None, actor=f"cli:{args.operator}")
        print(f"key id:   {key_id}")
        print(f"hmac key: {b64e(secret)}")
        return 0

    return asyncio.run(_with_ca(args, work))


def cmd_acme_eab_revoke(args: argparse.Namespace) -> int:
    async def work(ca: Any) -> int:
        if not await ca.credentials.revoke("acme", args.key_id, actor=f"cli:{args.operator}"):
            raise CLIError(f"no active EAB key {args.key_id!r}")
        print(f"revoked EAB key {args.key_id}")
        return 0

    return asyncio.run(_with_ca(args, work))


def cmd_acme_renew_now(args: argparse.Namespace) -> int:
    """ARI lever (RFC 9773): make certificates of a serial, profile or issuing CA renew now."""
    from protocols.acme.store.renewals import RenewNowStore

    async def work(ca: Any) -> int:
        if args.serial:
            record = await ca.find_by_serial(_parse_serial(args.serial))
            scope, value = "serial", record.serial_hex
        elif args.profile:
            if args.profile not in ca.profiles:
                raise CLIError(f"no profile named {args.profile!r}")
            scope, value = "profile", args.profile
        else:
            if args.issuer not in ca.issuers:
                raise CLIError(f"no issuer named {args.issuer!r}")
            scope, value = "issuer", args.issuer
        await RenewNowStore(ca.state).add(scope, value, f"cli:{args.operator}", ca.clock.now())
        print(f"renewalInfo now suggests renewing at once for {scope} {value}")
        return 0

    return asyncio.run(_with_ca(args, work))


def _acme_parser(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    acme = sub.add_parser("acme", help="ACME: external account keys, renewal information")
    asub = acme.add_subparsers(dest="action", required=True)
    eab = asub.add_parser("eab", help="external account binding keys").add_subparsers(dest="eab_action",
                                                                                        required=True)
    p = with_config(eab.add_parser("create", help="create an EAB key id and HMAC key"))
    p.add_argument("--profile", default="", help="the only profile accounts bound by this key may use")
    p.add_argument("--key-id", default="", help="choose the key id (default: random)")
    p.add_argument("--operator", default=os.environ.get("USER", "operator"))
    p.set_defaults(func=cmd_acme_eab_create)
    p = with_config(eab.add_parser("revoke", help="revoke an EAB key"))
    p.add_argument("key_id")
    p.add_argument("--operator", default=os.environ.get("USER", "operator"))
    p.set_defaults(func=cmd_acme_eab_revoke)
    p = with_config(asub.add_parser("renew-now", help="ARI: ask clients to renew now"))
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--serial", help="one certificate (hexadecimal serial)")
    group.add_argument("--profile", help="every certificate of a profile")
    group.add_argument("--issuer", help="every certificate of an issuing CA (rotation)")
    p.add_argument("--operator", default=os.environ.get("USER", "operator"))
    p.set_defaults(func=cmd_acme_renew_now)
# -- end of acme block ----------------------------------------------------------------------


# -- crl / ocsp (revocation publishing block) ---------------------------------------------
def cmd_crl_generate(args: argparse.Namespace) -> int:
    """Generate and publish CRLs now (complete, partitions, deltas), whatever the schedule."""
    from ca.revocation.crl import CrlService
    from ca.revocation.settings import CrlSettings

    settings = read_config(args.config).protocol_settings.get("crl") or CrlSettings()

    async def work(ca: Any) -> int:
        if args.ca and args.ca not in ca.issuers:
            raise CLIError(f"no issuer named {args.ca!r} (have: {', '.join(ca.issuers)})")
        service = CrlService(ca, settings)
        await service.start()
        for name in [args.ca] if args.ca else list(ca.issuers):
            published = await (service.generate_deltas(name) if args.delta else service.generate(name))
            for rec in published:
                print(f"{name}: {rec.kind} CRL {rec.scope} number {rec.number}, {rec.entries} entries, "
                      f"next update {rec.next_update:%Y-%m-%d %H:%M:%S} UTC")
        return 0

    return asyncio.run(_with_ca(args, work))


def cmd_ocsp_refresh(args: argparse.Namespace) -> int:
    """Sign what a running server would: missing, stale and aging pre-signed OCSP responses."""
    from ca.revocation.ocsp import OcspService
    from ca.revocation.settings import OcspSettings

    config = read_config(args.config)
    settings = config.protocol_settings.get("ocsp") or OcspSettings()

    async def work(ca: Any) -> int:
        service = OcspService(ca, settings)
        try:
            await service.start(preload=False)
            repaired = await service.reconcile(limit=1_000_000)
            refreshed = await service.refresh_due()
        finally:
            await service.close()
        print(f"OCSP: signed {repaired} missing or stale responses, refreshed {refreshed}")
        return 0

    return asyncio.run(_with_ca(args, work))


def _revocation_parser(sub: Any, with_config: Callable[[argparse.ArgumentParser], argparse.ArgumentParser]) -> None:
    crl = sub.add_parser("crl", help="certificate revocation lists").add_subparsers(dest="action", required=True)
    p = with_config(crl.add_parser("generate", help="generate and publish CRLs now"))
    p.add_argument("--ca", default=None, help="issuing CA name (default: every issuer)")
    p.add_argument("--delta", action="store_true", help="delta CRLs only, on top of the published ones")
    p.set_defaults(func=cmd_crl_generate)
    ocsp = sub.add_parser("ocsp", help="OCSP responses").add_subparsers(dest="action", required=True)
    p = with_config(ocsp.add_parser("refresh", help="sign missing and aging pre-signed responses now"))
    p.set_defaults(func=cmd_ocsp_refresh)
# -- end of revocation publishing block ------------------------------------------------------


# -- parser -----------------------------------------------------------------------------
def _key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key-type", choices=KEY_SPECS, default="ec-p256")
    p.add_argument("--passphrase-env", default="", help="environment variable holding the key passphrase")
    p.add_argument("--passphrase-file", default="", help="file holding the key passphrase")
    p.add_argument("--pkcs11-uri", default="", help="generate the key on a token: pkcs11:token=...;object=...")
    p.add_argument("--module", default="/usr/lib/softhsm/libsofthsm2.so", help="PKCS#11 module path")
    p.add_argument("--pin-env", default="", help="environment variable holding the token PIN")
    p.add_argument("--pin-file", default="", help="file holding the token PIN")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tetra", description="Tetra CA: ACME, EST, SCEP, CMP, OCSP and CRL")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", default=DEFAULT_CONFIG, help=f"config file (default {DEFAULT_CONFIG})")
        return p

    p = sub.add_parser("init", help="create a demo CA hierarchy, TLS certificate, database and config")
    p.add_argument("--dir", required=True)
    p.add_argument("--http", default="127.0.0.1:8080")
    p.add_argument("--https", default="127.0.0.1:8443")
    p.add_argument("--hostname", action="append", help="name for the TLS certificate (repeatable)")
    p.set_defaults(func=cmd_init)

    p = with_config(sub.add_parser("serve", help="run the server"))
    p.add_argument(
        "--workers", type=int, default=None, help="server processes sharing the ports (overrides [server] workers)"
    )
    p.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database schema").add_subparsers(dest="action", required=True)
    with_config(db.add_parser("upgrade", help="apply schema migrations")).set_defaults(func=cmd_db_upgrade)

    ca = sub.add_parser("ca", help="CA hierarchy").add_subparsers(dest="action", required=True)
    with_config(ca.add_parser("list", help="roots and issuing CAs")).set_defaults(func=cmd_ca_list)
    p = with_config(ca.add_parser("show", help="one issuing CA and the root fingerprint"))
    p.add_argument("name", nargs="?")
    p.set_defaults(func=cmd_ca_show)
    p = ca.add_parser("init-root", help="create a self-signed root (key in a file or on a token)")
    p.add_argument("--name", required=True, help="file stem for NAME.pem / NAME.key")
    p.add_argument("--out-dir", default=".")
    p.add_argument("--common-name", default="")
    p.add_argument("--organization", default=None)
    p.add_argument("--validity-days", type=int, default=7300)
    p.add_argument("--path-length", type=int, default=None)
    _key_options(p)
    p.set_defaults(func=cmd_ca_init_root)
    p = ca.add_parser("init-intermediate", help="create an issuing CA signed by a (possibly offline) root")
    p.add_argument("--name", required=True)
    p.add_argument("--out-dir", default=".")
    p.add_argument("--common-name", default="")
    p.add_argument("--organization", default=None)
    p.add_argument("--validity-days", type=int, default=1825)
    p.add_argument("--path-length", type=int, default=0)
    p.add_argument("--permitted-dns", action="append", help="name constraint: permitted DNS subtree")
    p.add_argument("--excluded-dns", action="append", help="name constraint: excluded DNS subtree")
    p.add_argument("--parent-cert", required=True)
    p.add_argument("--parent-key", required=True, help="the parent's encrypted PKCS#8 key file")
    p.add_argument("--parent-passphrase-env", default="")
    p.add_argument("--parent-passphrase-file", default="")
    p.add_argument("--add-to-config", default="", help="append [signers]/[issuers] entries to this config")
    _key_options(p)
    p.set_defaults(func=cmd_ca_init_intermediate)

    req = sub.add_parser("requests", help="enrollment requests waiting for approval")
    rsub = req.add_subparsers(dest="action", required=True)
    p = with_config(rsub.add_parser("list"))
    p.add_argument("--status", choices=["pending", "approved", "rejected"], default=None)
    for action in ("approve", "reject"):
        p = with_config(rsub.add_parser(action))
        p.add_argument("id", type=int)
        p.add_argument("--operator", default=os.environ.get("USER", "operator"))
        if action == "reject":
            p.add_argument("--note", default="")
    for p in rsub.choices.values():
        p.set_defaults(func=cmd_requests)
        if not hasattr(p, "operator"):
            p.set_defaults(operator=os.environ.get("USER", "operator"))

    p = with_config(sub.add_parser("issue", help="issue a certificate from a CSR"))
    p.add_argument("--csr", required=True, help="PEM or DER CSR file, or - for stdin")
    p.add_argument("--profile", required=True)
    p.add_argument("--dry-run", action="store_true", help="show the decision without signing")
    p.add_argument("--out", default="")
    p.add_argument("--operator", default=os.environ.get("USER", "operator"))
    for field in ("owner", "team", "application", "location"):
        p.add_argument(f"--{field}", default=None)
    p.set_defaults(func=cmd_issue)

    p = with_config(sub.add_parser("revoke", help="revoke a certificate by serial"))
    p.add_argument("serial", help="hexadecimal serial")
    p.add_argument("--reason", default="unspecified", help="RFC 5280 reason name or code")
    p.add_argument("--issuer", default=None)
    p.add_argument("--operator", default=os.environ.get("USER", "operator"))
    p.set_defaults(func=cmd_revoke)

    certs = sub.add_parser("certs", help="certificate inventory").add_subparsers(dest="action", required=True)
    p = with_config(certs.add_parser("list"))
    p.add_argument("--expiring", type=int, metavar="DAYS", help="expiring within DAYS days")
    p.add_argument("--profile")
    p.add_argument("--status", choices=["signing", "issued", "failed", "revoked"])
    p.add_argument("--protocol")
    p.add_argument("--issuer")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(func=cmd_certs_list)

    audit = sub.add_parser("audit", help="audit log").add_subparsers(dest="action", required=True)
    with_config(audit.add_parser("verify", help="check the hash chain")).set_defaults(func=cmd_audit_verify)
    _acme_parser(sub, with_config)  # ACME block
    _revocation_parser(sub, with_config)  # CRL / OCSP block
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.func is not cmd_serve:
        # One-shot commands report through their own one-line errors; keep library chatter out.
        logging.basicConfig(level=logging.ERROR, format="tetra: %(levelname)s: %(message)s")
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except (CLIError, ConfigError) as exc:
        print(f"tetra: error: {exc}", file=sys.stderr)
        return 2
    except CAError as exc:
        print(f"tetra: error: {exc.detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
