"""The parent CA's key for commands that sign a CA certificate, an ARL or a root's OCSP answers:
a key file opened for this one command, or a key on a PKCS#11 token (the root's key never
leaves it). One option group and one opener, so every such command names it the same way."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from ca.errors import CAError, ConfigError
from server.cli.common import CLIError

SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"


@dataclass(frozen=True)
class ParentKey:
    """An opened parent key and where it came from (for messages). A token session ends with the
    command's process, like every other `tetra ca` command's."""

    key: CertificateIssuerPrivateKeyTypes
    where: str


def add_parent_key_options(p: argparse.ArgumentParser, *, who: str = "parent CA") -> None:
    g = p.add_argument_group(f"the key of the {who}: a file or a PKCS#11 token (exactly one)")
    g.add_argument("--parent-key", default="", help="its encrypted PKCS#8 key file")
    g.add_argument("--parent-passphrase-env", default="", help="environment variable holding its passphrase")
    g.add_argument("--parent-passphrase-file", default="", help="file holding its passphrase")
    g.add_argument("--parent-pkcs11-uri", default="", help="its key on a token: pkcs11:token=...;object=...")
    g.add_argument("--parent-module", default=SOFTHSM, help="PKCS#11 module path for --parent-pkcs11-uri")
    g.add_argument("--parent-pin-env", default="", help="environment variable holding the token PIN")
    g.add_argument("--parent-pin-file", default="", help="file holding the token PIN")


def parent_key_given(args: argparse.Namespace) -> bool:
    return bool(args.parent_key or args.parent_pkcs11_uri)


def open_parent_key(args: argparse.Namespace, certificate: x509.Certificate) -> ParentKey:
    """Open the key ``certificate`` belongs to, or fail in one line (wrong file, wrong PIN, token
    absent, a key of another CA) before anything is generated or written (CAL-05)."""
    from ca.config_secrets import read_secret

    if bool(args.parent_key) == bool(args.parent_pkcs11_uri):
        raise CLIError("name the parent's key with exactly one of --parent-key FILE and --parent-pkcs11-uri URI")
    subject = certificate.subject.rfc4514_string()
    if args.parent_key:
        from ca.signers.software import load_encrypted_key

        secret = read_secret(args.parent_passphrase_env, args.parent_passphrase_file, f"{args.parent_key} passphrase")
        key: Any = load_encrypted_key(Path(args.parent_key), secret)
        opened = ParentKey(key, args.parent_key)
    else:
        from ca.signers.pkcs11 import Pkcs11Signer

        pin = read_secret(args.parent_pin_env, args.parent_pin_file, "PKCS#11 PIN")
        try:
            signer = Pkcs11Signer.open_blocking("parent", args.parent_module, args.parent_pkcs11_uri, pin)
        except CAError as exc:  # the token is absent or does not answer
            raise CLIError(f"the parent's key: {exc.detail}") from None
        except ConfigError as exc:  # a wrong PIN, URI or module, or no such key on the token
            raise CLIError(f"the parent's key: {exc}") from None
        opened = ParentKey(signer.private_key(), args.parent_pkcs11_uri)
    if opened.key.public_key() != certificate.public_key():
        raise CLIError(f"{opened.where} is not the key of {subject}")
    return opened
