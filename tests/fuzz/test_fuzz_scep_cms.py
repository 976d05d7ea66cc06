"""SCEP-10, DOS-06: hostile CMS for the SCEP path's parsers (ca/cms) — only CAError, in bounded time.

A PKIOperation carries a SignedData around an EnvelopedData, both the client's DER. Beyond the
mutations tests/unit/ca/test_cms.py already feeds them, these are the structures a hostile client
builds on purpose (tests/hostile_cms.py), plain and inside a signed PKIOperation, their
mutations, nesting thousands deep, lengths of up to 2^64, trailing bytes and random bytes. Each
must end in a CAError with one of the reasons the protocols map (never another exception, which
would be a 500) within `CALL_SECONDS`. tests/integration/test_scep_hostile.py sends the same
bytes to `tetra serve`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from cryptography import x509
from hypothesis import example, given
from hypothesis import strategies as st

from ca.cms import parse_certs_only, parse_signed_data, sign_data
from ca.cms.enveloped import decrypt_enveloped
from ca.cms.scep import read_scep_attributes
from ca.errors import CAError, FailureReason
from ca.signers.software import SoftwareSigner
from tests.fuzz.harness import STATS, fuzz_settings, mutated
from tests.helpers import self_signed
from tests.hostile_cms import ENVELOPED, SIGNED, hostile_envelopes, huge_length, nested, valid_envelope

CALL_SECONDS = 2.0  # generous for one parse of at most 256 KiB; a loop or blow-up takes far longer
REFUSALS = (FailureReason.MALFORMED, FailureReason.BAD_SIGNATURE, FailureReason.BAD_ALGORITHM)


@functools.cache
def ra() -> tuple[SoftwareSigner, x509.Certificate]:
    key, certificate = self_signed("fuzz SCEP RA")
    return SoftwareSigner("ra", key), certificate


async def signed(content: bytes) -> bytes:
    """``content`` signed as a SCEP client signs a PKIOperation (self-signed certificate)."""
    key, certificate = client()
    return await sign_data(SoftwareSigner("client", key), certificate, content)


@functools.cache
def client() -> tuple[Any, x509.Certificate]:
    return self_signed("fuzz SCEP client", key_spec="rsa-2048")


def _only_ca_errors(what: str, call: Callable[[], object]) -> None:
    started = time.monotonic()
    try:
        call()
    except CAError as exc:
        assert exc.reason in REFUSALS, (what, exc.reason, exc.detail)
    elapsed = time.monotonic() - started
    assert elapsed < CALL_SECONDS, f"{what} took {elapsed:.1f} s"


def every_parser(data: bytes) -> None:
    """The SCEP path's CMS entry points on ``data``: each returns or raises a CAError. A SignedData
    that verifies goes on as a PKIOperation does: its attributes read, its content decrypted."""
    signer, certificate = ra()

    def decrypt(der: bytes) -> None:
        for allow_des3 in (False, True):
            call = functools.partial(decrypt_enveloped, der, signer, certificate, allow_des3=allow_des3)
            _only_ca_errors("decrypt_enveloped", lambda: asyncio.run(call()))  # noqa: B023 - called at once

    def pki_operation() -> None:
        message = parse_signed_data(data)
        read_scep_attributes(message.signed_attributes)
        decrypt(message.content)

    decrypt(data)
    _only_ca_errors("parse_signed_data", pki_operation)
    _only_ca_errors("parse_certs_only", lambda: parse_certs_only(data))


def _counted(name: str, runs: list[int], started: float) -> None:
    count, seconds = STATS.setdefault(name, [0, 0.0])
    STATS[name] = [count + runs[0], seconds + time.monotonic() - started]


def test_scep10_hostile_envelopes_named() -> None:
    """SCEP-10: each hand-built hostile EnvelopedData is refused with a CAError, not decrypted."""
    signer, certificate = ra()
    for name, (der, refusal) in hostile_envelopes(ra()[1]).items():
        try:
            asyncio.run(decrypt_enveloped(der, signer, certificate))
        except CAError as exc:
            assert exc.reason in REFUSALS and exc.detail.startswith(refusal), (name, exc)
        else:
            raise AssertionError(f"{name}: decrypted")
        every_parser(der)
        every_parser(asyncio.run(signed(der)))  # the same envelope as a PKIOperation's content


def test_scep10_hostile_structures_and_their_mutations() -> None:
    """SCEP-10, DOS-06: hostile envelopes, mutated; deep nesting; huge lengths; random bytes."""
    runs = [0]
    seeds = st.sampled_from(sorted(hostile_envelopes(ra()[1]).items())).flatmap(lambda item: mutated(item[1][0]))
    message = asyncio.run(signed(valid_envelope(ra()[1])))
    depth = st.integers(100, 40_000)
    shapes = st.one_of(
        seeds,
        mutated(valid_envelope(ra()[1])),
        mutated(message),
        st.tuples(depth, st.booleans(), st.sampled_from([ENVELOPED, SIGNED])).map(lambda a: nested(*a)),
        st.tuples(st.integers(1, 8), st.sampled_from([0x00, 0x7F, 0xFF])).map(lambda a: huge_length(*a)),
        st.binary(min_size=1, max_size=16).map(lambda tail: valid_envelope(ra()[1]) + tail),  # extended
        st.binary(max_size=2048),
    )

    @fuzz_settings(3)
    @given(shapes)
    @example(nested(40_000, indefinite=False, content_type=SIGNED))
    @example(nested(40_000, indefinite=True, content_type=SIGNED))
    @example(message[:-1])
    @example(valid_envelope(ra()[1])[:-1])
    @example(valid_envelope(ra()[1]) + b"\x00")
    @example(b"")
    def check(data: bytes) -> None:
        runs[0] += 1
        every_parser(data)

    started = time.monotonic()
    check()
    _counted("scep hostile CMS", runs, started)
