"""The CA hierarchy: `tetra ca list | show | init-root | init-intermediate`.

init-root and init-intermediate work on files (an offline root needs no server config);
list and show read the config.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.serialization import Encoding

from ca.keys import KEY_SPECS
from server.cli import ca_revoke, ca_rollover, ca_status
from server.cli.common import CLIError, add_config_option, on_ca_reading, read_config

if TYPE_CHECKING:
    from server.cli.common import Subcommands


def ca_show(args: argparse.Namespace) -> int:
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
    from ca.config_secrets import read_secret
    from ca.signers.software import load_encrypted_key

    secret = read_secret(passphrase_env, passphrase_file, f"{path} passphrase")
    return load_encrypted_key(Path(path), secret)


def _new_key(args: argparse.Namespace, out_key: Path) -> Any:
    """Generate the CA key in software (encrypted file) or on a PKCS#11 token."""
    if args.pkcs11_uri:
        from ca.config_secrets import read_secret
        from ca.signers.pkcs11 import Pkcs11Signer, generate_token_key

        pin = read_secret(args.pin_env, args.pin_file, "PKCS#11 PIN")
        generate_token_key(args.module, args.pkcs11_uri, args.key_type, pin)
        return Pkcs11Signer.open_blocking("new-ca", args.module, args.pkcs11_uri, pin)
    from ca.config_secrets import read_secret
    from ca.keys import generate_private_key
    from ca.signers.software import save_encrypted_key

    key = generate_private_key(args.key_type)
    save_encrypted_key(key, out_key, read_secret(args.passphrase_env, args.passphrase_file, "key passphrase"))
    return key


def _output_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    """NAME.pem and NAME.key in --out-dir; never overwrite a CA certificate."""
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = out / f"{args.name}.pem", out / f"{args.name}.key"
    if cert_path.exists():
        raise CLIError(f"{cert_path} already exists")
    return cert_path, key_path


def ca_init_root(args: argparse.Namespace) -> int:
    from ca.hierarchy import CAProfile, create_root, fingerprint_sha256

    cert_path, key_path = _output_paths(args)
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


def ca_init_intermediate(args: argparse.Namespace) -> int:
    from ca.hierarchy import CAProfile, create_intermediate, fingerprint_sha256
    from server.wiring import load_certificates

    if args.add_to_config:
        _refuse_taken_name(Path(args.add_to_config), args.name)  # before any key is made
    parent = load_certificates(Path(args.parent_cert))[0]
    parent_key = _load_private_key(args.parent_key, args.parent_passphrase_env, args.parent_passphrase_file)
    if parent_key.public_key() != parent.public_key():
        raise CLIError(f"{args.parent_key} is not the key of {args.parent_cert}")
    cert_path, key_path = _output_paths(args)
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


def _refuse_taken_name(config_path: Path, name: str) -> None:
    """A second [signers.NAME] or [issuers.NAME] would make the file invalid TOML: refuse first."""
    config = read_config(str(config_path))  # also refuses to edit a config that does not load
    for kind, names in (("issuer", config.issuers), ("signer", config.signers)):
        if name in names:
            raise CLIError(f"{config_path}: [{kind}s.{name}] already exists; choose another --name")


def _relative_to(config_path: Path, path: str | Path) -> str:
    """``path`` as the config loader will read it: relative to the config file's directory, so a
    CA directory can be moved or copied (to another machine, into a container) as a whole."""
    return os.path.relpath(Path(path).resolve(), config_path.resolve().parent)


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
        lines += [entry("backend", "software"), entry("key_file", _relative_to(config_path, key_path))]
        env_key, env, file_key, file = "passphrase_env", args.passphrase_env, "passphrase_file", args.passphrase_file
    # Both when both were given: the variable wins when set, the file otherwise (read_secret).
    lines += [entry(env_key, env)] if env else []
    lines += [entry(file_key, _relative_to(config_path, file))] if file else []
    lines += [f"\n[issuers.{args.name}]"]
    lines += [entry("certificate", _relative_to(config_path, cert_path)), entry("signer", args.name), ""]
    with config_path.open("a") as out:
        out.write("\n".join(lines))


def _new_ca_options(p: argparse.ArgumentParser, *, validity_days: int, path_length: int | None) -> None:
    """What init-root and init-intermediate both take: names, validity and where the key goes."""
    p.add_argument("--name", required=True, help="file stem for NAME.pem / NAME.key")
    p.add_argument("--out-dir", default=".")
    p.add_argument("--common-name", default="")
    p.add_argument("--organization", default=None)
    p.add_argument("--validity-days", type=int, default=validity_days)
    p.add_argument("--path-length", type=int, default=path_length)
    p.add_argument("--key-type", choices=KEY_SPECS, default="ec-p256")
    p.add_argument("--passphrase-env", default="", help="environment variable holding the key passphrase")
    p.add_argument("--passphrase-file", default="", help="file holding the key passphrase")
    p.add_argument("--pkcs11-uri", default="", help="generate the key on a token: pkcs11:token=...;object=...")
    p.add_argument("--module", default="/usr/lib/softhsm/libsofthsm2.so", help="PKCS#11 module path")
    p.add_argument("--pin-env", default="", help="environment variable holding the token PIN")
    p.add_argument("--pin-file", default="", help="file holding the token PIN")


def add_commands(sub: Subcommands) -> None:
    ca = sub.add_parser("ca", help="CA hierarchy").add_subparsers(dest="action", required=True)
    p = add_config_option(ca.add_parser("list", help="every CA generation: state, validity, key, valid certificates"))
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=on_ca_reading(ca_status.ca_list))
    p = add_config_option(ca.add_parser("show", help="one issuing CA and the root fingerprint"))
    p.add_argument("name", nargs="?")
    p.set_defaults(func=ca_show)

    p = ca.add_parser("init-root", help="create a self-signed root (key in a file or on a token)")
    _new_ca_options(p, validity_days=7300, path_length=None)
    p.set_defaults(func=ca_init_root)

    p = ca.add_parser("init-intermediate", help="create an issuing CA signed by a (possibly offline) root")
    _new_ca_options(p, validity_days=1825, path_length=0)
    p.add_argument("--permitted-dns", action="append", help="name constraint: permitted DNS subtree")
    p.add_argument("--excluded-dns", action="append", help="name constraint: excluded DNS subtree")
    p.add_argument("--parent-cert", required=True)
    p.add_argument("--parent-key", required=True, help="the parent's encrypted PKCS#8 key file")
    p.add_argument("--parent-passphrase-env", default="")
    p.add_argument("--parent-passphrase-file", default="")
    p.add_argument("--add-to-config", default="", help="append [signers]/[issuers] entries to this config")
    p.set_defaults(func=ca_init_intermediate)
    ca_revoke.add_commands(ca)
    ca_rollover.add_commands(ca)
