"""The key of a CA a command is making (`ca init-root`, `ca init-intermediate`, `ca csr`): an
encrypted key file or a non-extractable key on a PKCS#11 token, one option group for all three.

Its secret is read before anything is generated, and `NewKey.remove` takes the key away again
(the file, or the token's objects), so a command that fails after making the key leaves no
half-made CA behind (CAL-05).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from ca.keys import KEY_SPECS
from server.cli.ca_keys import SOFTHSM


@dataclass
class NewKey:
    """A freshly made CA key and where it is (``key_file`` or ``uri``)."""

    private: CertificateIssuerPrivateKeyTypes
    key_file: Path | None = None
    uri: str = ""
    module: str = ""
    pin: bytes = field(default=b"", repr=False)

    def remove(self) -> None:
        """Undo the key: delete its file or its token objects."""
        if self.key_file is not None:
            self.key_file.unlink(missing_ok=True)
        else:
            _destroy(self.module, self.uri, self.pin)


def _destroy(module: str, uri: str, pin: bytes) -> None:
    """Best effort: the command is failing already, and its own error is the one to report."""
    from ca.errors import CAError, ConfigError
    from ca.signers.pkcs11_keygen import destroy_token_key

    try:
        destroy_token_key(module, uri, pin)
    except (CAError, ConfigError):
        pass


def add_new_key_options(
    p: argparse.ArgumentParser | argparse._ArgumentGroup, *, key_type: str = "ec-p256", key_type_help: str = ""
) -> None:
    """Where a new CA key goes and how it is unlocked: a passphrase for a file, or a token and its PIN."""
    p.add_argument("--key-type", choices=KEY_SPECS, default=key_type, help=key_type_help or None)
    p.add_argument("--passphrase-env", default="", help="environment variable holding the key passphrase")
    p.add_argument("--passphrase-file", default="", help="file holding the key passphrase")
    p.add_argument("--pkcs11-uri", default="", help="generate the key on a token: pkcs11:token=...;object=...")
    p.add_argument("--module", default=SOFTHSM, help="PKCS#11 module path")
    p.add_argument("--pin-env", default="", help="environment variable holding the token PIN")
    p.add_argument("--pin-file", default="", help="file holding the token PIN")


def new_key_secret(args: argparse.Namespace) -> bytes:
    """The token PIN or the key file's passphrase: read first, so a missing one makes nothing."""
    from ca.config_secrets import read_secret

    if args.pkcs11_uri:
        return read_secret(args.pin_env, args.pin_file, "PKCS#11 PIN")
    return read_secret(args.passphrase_env, args.passphrase_file, "key passphrase")


def make_new_key(args: argparse.Namespace, key_path: Path, secret: bytes) -> NewKey:
    """Generate the key on the token (``--pkcs11-uri``) or in an encrypted file at ``key_path``."""
    if args.pkcs11_uri:
        from ca.signers.pkcs11 import Pkcs11Signer, generate_token_key

        generate_token_key(args.module, args.pkcs11_uri, args.key_type, secret)
        try:
            private = Pkcs11Signer.open_blocking("new-ca", args.module, args.pkcs11_uri, secret).private_key()
        except BaseException:
            _destroy(args.module, args.pkcs11_uri, secret)
            raise
        return NewKey(private, uri=args.pkcs11_uri, module=args.module, pin=secret)
    from server.cli.common import CLIError

    if key_path.exists():
        raise CLIError(f"{key_path} already exists")
    from ca.keys import generate_private_key
    from ca.signers.software import save_encrypted_key

    key = generate_private_key(args.key_type)
    try:
        save_encrypted_key(key, key_path, secret)
    except OSError as exc:
        key_path.unlink(missing_ok=True)
        raise CLIError(f"{key_path}: cannot write the key: {exc.strerror}") from None
    return NewKey(key, key_file=key_path)
