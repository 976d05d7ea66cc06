"""The CA hierarchy: `tetra ca list | show | init-root | init-intermediate`.

init-root and init-intermediate work on files (an offline root needs no server config);
list and show read the config. The parent's key (file or token) is opened by ca_keys.py, the new
CA's key made by new_key.py; `ca csr` and `ca import` (an external root) are in ca_import.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from server.cli import ca_import, ca_revoke, ca_rollover, ca_status
from server.cli.ca_keys import add_parent_key_options, open_parent_key
from server.cli.common import CLIError, add_config_option, config_relative, on_ca_reading, read_config
from server.cli.new_key import add_new_key_options, make_new_key, new_key_secret

if TYPE_CHECKING:
    from ca.hierarchy import CAProfile
    from server.cli.common import Subcommands


def _output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """NAME.pem and NAME.key in --out-dir; never overwrite a CA certificate or key."""
    out = Path(args.out_dir)
    cert_path, key_path = out / f"{args.name}.pem", out / f"{args.name}.key"
    for path in (cert_path, key_path) if not args.pkcs11_uri else (cert_path,):
        if path.exists():
            raise CLIError(f"{path} already exists")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"{out}: cannot create the directory: {exc.strerror}") from None
    return cert_path, key_path


def _write_certificate(path: Path, cert: x509.Certificate) -> None:
    try:
        path.write_bytes(cert.public_bytes(Encoding.PEM))
    except OSError as exc:
        raise CLIError(f"{path}: cannot write the certificate: {exc.strerror}") from None


def _profile(args: argparse.Namespace) -> CAProfile:
    """The new CA's profile, checked before its key is made: a name or constraint the certificate
    cannot carry is an option error, not a failure after the key exists."""
    from ca.hierarchy import CAProfile

    if args.validity_days < 1:
        raise CLIError(f"--validity-days {args.validity_days}: must be at least 1")
    permitted, excluded = (
        tuple(getattr(args, "permitted_dns", None) or ()),
        tuple(getattr(args, "excluded_dns", None) or ()),
    )
    profile = CAProfile(
        args.common_name or args.name, args.organization, args.validity_days, args.path_length, permitted, excluded
    )
    try:
        profile.subject()
        for name in permitted + excluded:
            x509.DNSName(name)
    except ValueError as exc:
        raise CLIError(f"the new CA's name or name constraints: {exc}") from None
    return profile


def ca_init_root(args: argparse.Namespace) -> int:
    from ca.hierarchy import create_root, fingerprint_sha256

    profile = _profile(args)
    secret = new_key_secret(args)
    cert_path, key_path = _output_paths(args)
    key = make_new_key(args, key_path, secret)
    try:
        cert = create_root(profile, key.private)
        _write_certificate(cert_path, cert)
    except BaseException:
        key.remove()
        cert_path.unlink(missing_ok=True)
        raise
    print(f"root certificate: {cert_path}")
    if not args.pkcs11_uri:
        print(f"root key:         {key_path} (keep it offline)")
    print(f"root SHA-256 fingerprint: {fingerprint_sha256(cert)}")
    return 0


def ca_init_intermediate(args: argparse.Namespace) -> int:
    """The parent's key is opened and checked, and the new key's secret read, before the new key
    is made; a failure after that removes the key and the certificate (CAL-05)."""
    from ca.hierarchy import create_intermediate, fingerprint_sha256
    from server.wiring import load_certificates

    if args.add_to_config:
        _refuse_taken_name(Path(args.add_to_config), args.name)  # before any key is made
    profile = _profile(args)
    parent = load_certificates(Path(args.parent_cert))[0]
    parent_key = open_parent_key(args, parent)
    secret = new_key_secret(args)
    cert_path, key_path = _output_paths(args)
    key = make_new_key(args, key_path, secret)
    try:
        cert = create_intermediate(profile, key.private.public_key(), parent, parent_key.key)
        _write_certificate(cert_path, cert)
        if args.add_to_config:
            _append_issuer(Path(args.add_to_config), args, cert_path, key_path)
    except BaseException:
        key.remove()
        cert_path.unlink(missing_ok=True)  # _output_paths refused one that was there before
        raise
    print(f"intermediate certificate: {cert_path}  sha256 {fingerprint_sha256(cert)}")
    if args.add_to_config:
        print(f"added issuer {args.name} to {args.add_to_config}")
    return 0


def _refuse_taken_name(config_path: Path, name: str) -> None:
    """A second [signers.NAME] or [issuers.NAME] would make the file invalid TOML: refuse first."""
    config = read_config(str(config_path))  # also refuses to edit a config that does not load
    for kind, names in (("issuer", config.issuers), ("signer", config.signers)):
        if name in names:
            raise CLIError(f"{config_path}: [{kind}s.{name}] already exists; choose another --name")


def _toml_string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string for any path or URI


def _append_issuer(config_path: Path, args: argparse.Namespace, cert_path: Path, key_path: Path) -> None:
    def entry(key: str, value: str) -> str:
        return f"{key} = {_toml_string(value)}"

    lines = [f"\n[signers.{args.name}]"]
    if args.pkcs11_uri:
        lines += [entry("backend", "pkcs11"), entry("module", args.module), entry("uri", args.pkcs11_uri)]
        env_key, env, file_key, file = "pin_env", args.pin_env, "pin_file", args.pin_file
    else:
        lines += [entry("backend", "software"), entry("key_file", config_relative(config_path.parent, key_path))]
        env_key, env, file_key, file = "passphrase_env", args.passphrase_env, "passphrase_file", args.passphrase_file
    # Both when both were given: the variable wins when set, the file otherwise (read_secret).
    lines += [entry(env_key, env)] if env else []
    lines += [entry(file_key, config_relative(config_path.parent, file))] if file else []
    lines += [f"\n[issuers.{args.name}]"]
    lines += [entry("certificate", config_relative(config_path.parent, cert_path)), entry("signer", args.name), ""]
    try:
        with config_path.open("a") as out:
            out.write("\n".join(lines))
    except OSError as exc:
        raise CLIError(f"{config_path}: cannot add the issuer: {exc.strerror}") from None


def _new_ca_options(p: argparse.ArgumentParser, *, validity_days: int, path_length: int | None) -> None:
    """What init-root and init-intermediate both take: names, validity and where the key goes."""
    p.add_argument("--name", required=True, help="file stem for NAME.pem / NAME.key")
    p.add_argument("--out-dir", default=".")
    p.add_argument("--common-name", default="")
    p.add_argument("--organization", default=None)
    p.add_argument("--validity-days", type=int, default=validity_days)
    p.add_argument("--path-length", type=int, default=path_length)
    add_new_key_options(p)


def add_commands(sub: Subcommands) -> None:
    ca = sub.add_parser("ca", help="CA hierarchy").add_subparsers(dest="action", required=True)
    p = add_config_option(ca.add_parser("list", help="every CA generation: state, validity, key, valid certificates"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=on_ca_reading(ca_status.ca_list))
    p = add_config_option(ca.add_parser("show", help="one CA generation (default: the one issuing now) and the roots"))
    p.add_argument("name", nargs="?", help="a generation (issuing-ca, issuing-ca.2, root) or a CA's name")
    p.add_argument("--pem", action="store_true", help="print only its certificate, PEM")
    p.set_defaults(func=on_ca_reading(ca_status.ca_show))

    p = ca.add_parser("init-root", help="create a self-signed root (key in a file or on a token)")
    _new_ca_options(p, validity_days=7300, path_length=None)
    p.set_defaults(func=ca_init_root)

    p = ca.add_parser("init-intermediate", help="create an issuing CA signed by a (possibly offline) root")
    _new_ca_options(p, validity_days=1825, path_length=0)
    p.add_argument("--permitted-dns", action="append", help="name constraint: permitted DNS subtree")
    p.add_argument("--excluded-dns", action="append", help="name constraint: excluded DNS subtree")
    p.add_argument("--parent-cert", required=True, help="the parent CA's certificate (PEM)")
    add_parent_key_options(p)
    p.add_argument("--add-to-config", default="", help="append [signers]/[issuers] entries to this config")
    p.set_defaults(func=ca_init_intermediate)
    ca_revoke.add_commands(ca)
    ca_import.add_commands(ca)
    ca_rollover.add_commands(ca)
