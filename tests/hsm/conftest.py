"""A real SoftHSM2 token for the PKCS#11 signer tests.

SoftHSM reads SOFTHSM2_CONF once, at C_Initialize, and the library is loaded
once per process, so the token is session-scoped: one config directory and
one token per test run, with a fresh key label per test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from ca.signers.pkcs11 import Pkcs11Signer, generate_token_key, shutdown_modules

SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN_LABEL = "tetra-test"
USER_PIN = "1234"
SO_PIN = "5678"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def softhsm_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Path of the SoftHSM2 module, with an initialised token in a private directory."""
    util = shutil.which("softhsm2-util")
    if not Path(SOFTHSM_MODULE).is_file() or util is None:
        reason = f"SoftHSM2 is not installed ({SOFTHSM_MODULE} or softhsm2-util missing)"
        if _in_ci():
            pytest.fail(f"{reason}; CI must run the HSM tests (apt-get install softhsm2)")
        pytest.skip(f"{reason}; install softhsm2 to run the HSM tests")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    try:
        subprocess.run(
            [
                util,
                "--init-token",
                "--free",
                "--label",
                TOKEN_LABEL,
                "--pin",
                USER_PIN,
                "--so-pin",
                SO_PIN,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        yield SOFTHSM_MODULE
    finally:
        shutdown_modules()
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="session")
def softhsm_token(softhsm_module: str) -> str:
    """Label of the test token."""
    return TOKEN_LABEL


@pytest.fixture(scope="session")
def softhsm_pin(softhsm_module: str) -> str:
    return USER_PIN


def token_uri(token: str, label: str) -> str:
    """An RFC 7512 URI for a key on the test token."""
    return f"pkcs11:token={quote(token, safe='')};object={quote(label, safe='')}"


def fresh_label(spec: str) -> str:
    return f"test-{spec}-{uuid.uuid4().hex[:10]}"


MakeSigner = Callable[..., Pkcs11Signer]


@pytest.fixture
async def make_hsm_signer(softhsm_module: str, softhsm_token: str, softhsm_pin: str) -> AsyncIterator[MakeSigner]:
    """make_hsm_signer(spec, *, decrypt=False, call_timeout=5.0) -> an open Pkcs11Signer.

    Generates a fresh key on the token for every call; signers are closed
    when the test ends.
    """
    opened: list[Pkcs11Signer] = []

    def factory(spec: str, *, decrypt: bool = False, call_timeout: float = 5.0) -> Pkcs11Signer:
        label = fresh_label(spec)
        uri = token_uri(softhsm_token, label)
        generate_token_key(softhsm_module, uri, spec, softhsm_pin, decrypt=decrypt)
        signer = Pkcs11Signer.open_blocking(label, softhsm_module, uri, softhsm_pin, call_timeout=call_timeout)
        opened.append(signer)
        return signer

    yield factory
    for signer in opened:
        await signer.close()
