"""Secrets a config file names but never holds: key passphrases, PKCS#11 PINs, the API token.

The config says where to read one (an environment variable or a file) and the value is read
here, so the signers, the CLI and the protocols (the operator API's bearer token) refuse a
missing or unreadable secret with the same message.
"""

from __future__ import annotations

import os
from pathlib import Path

from ca.errors import ConfigError


def read_secret(env: str = "", file: str = "", what: str = "secret") -> bytes:
    """A secret from an environment variable or a file (trailing newline dropped).

    Given both, the variable wins when it is set and the file is read otherwise: a service
    keeps its PIN in a root-only file, and an operator can still hand one command another
    PIN (or a test its own) without editing the config."""
    if env and (env in os.environ or not file):
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{what}: environment variable {env} is not set")
        return value.encode()
    if file:
        try:
            return Path(file).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {file}: {exc.strerror}") from None
    raise ConfigError(f"{what}: set either an environment variable or a file")
