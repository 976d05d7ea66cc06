"""What the CMS and CRMF tests (test_cms.py, test_crmf.py) share: the openssl command line they
check against, PEM key files for it, and the byte mutations their fuzzers feed the parsers.

Each fuzzer decides for itself which refusals count as clean (test_cms narrows them to the
reasons a parser may give); only the mutation of the sample is common.
"""

from __future__ import annotations

import shutil

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl command line not installed")

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def pem_private_key(key: PrivateKeyTypes) -> bytes:
    """The unencrypted PKCS#8 PEM that `openssl ... -inkey` / `-newkey` reads."""
    encoding, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, pkcs8, serialization.NoEncryption())


def mutate(data: bytes, draw: st.DrawFn, garbage_size: int) -> bytes:
    """``data`` truncated, with one byte flipped, with a few bytes inserted, or replaced by
    garbage of up to ``garbage_size`` bytes: what a broken or hostile peer sends."""
    kind = draw(st.sampled_from(["truncate", "flip", "insert", "garbage"]))
    if kind == "garbage":
        return draw(st.binary(max_size=garbage_size))
    at = draw(st.integers(0, len(data) - 1))
    if kind == "truncate":
        return data[:at]
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
