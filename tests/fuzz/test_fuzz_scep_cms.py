"""SCEP-10, DOS-06: hostile CMS for the SCEP path's parsers (ca/cms) — only CAError, in bounded time.

A PKIOperation carries a SignedData around an EnvelopedData, both the client's DER. Beyond the
mutations tests/unit/ca/test_cms.py already feeds them, these are structures a hostile client
builds on purpose: recipients of every other kind (KeyAgreeRecipientInfo whose algorithm lacks
its parameters, PasswordRecipientInfo, KEKRecipientInfo, OtherRecipientInfo), a ktri naming us
with an algorithm we do not take, content encryption without its IV, nesting thousands deep
(definite and BER indefinite lengths), lengths of up to 2^64, trailing bytes, random bytes.
Each must end in a CAError with one of the reasons the protocols map (never another exception,
which would be a 500) within `CALL_SECONDS`.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import example, given
from hypothesis import strategies as st

from ca.cms import ContentCipher, envelope, parse_certs_only, parse_signed_data, sign_data
from ca.cms.enveloped import decrypt_enveloped
from ca.cms.scep import read_scep_attributes
from ca.errors import CAError, FailureReason
from ca.signers.software import SoftwareSigner
from tests.fuzz.harness import STATS, fuzz_settings, mutated
from tests.helpers import self_signed

CALL_SECONDS = 2.0  # generous for one parse of at most 256 KiB; a loop or blow-up takes far longer
REFUSALS = (FailureReason.MALFORMED, FailureReason.BAD_SIGNATURE, FailureReason.BAD_ALGORITHM)
ENVELOPED = "1.2.840.113549.1.7.3"
SIGNED = "1.2.840.113549.1.7.2"


@functools.cache
def ra() -> tuple[SoftwareSigner, x509.Certificate]:
    key, certificate = self_signed("fuzz SCEP RA")
    return SoftwareSigner("ra", key), certificate


def _ours() -> cms.IssuerAndSerialNumber:
    cert = asn1_x509.Certificate.load(ra()[1].public_bytes(Encoding.DER))
    return cms.IssuerAndSerialNumber({"issuer": cert.issuer, "serial_number": cert.serial_number})


def _content_info(enveloped: cms.EnvelopedData) -> bytes:
    return bytes(cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump())


@functools.cache
def valid_envelope() -> bytes:
    return envelope(b"0" * 300, ra()[1], cipher=ContentCipher.AES128_CBC)


def _with_recipient(info: cms.RecipientInfo) -> bytes:
    """The valid envelope with its one recipient replaced by ``info``."""
    enveloped = cms.ContentInfo.load(valid_envelope())["content"].copy()
    enveloped["recipient_infos"] = [info]
    return _content_info(enveloped)


@functools.cache
def hostile_envelopes() -> dict[str, tuple[bytes, str]]:
    """EnvelopedData a hostile client builds on purpose, by name, with the refusal each must get."""
    ktri_fields = {
        "version": "v0",
        "rid": cms.RecipientIdentifier(name="issuer_and_serial_number", value=_ours()),
        "key_encryption_algorithm": {"algorithm": "rsaes_oaep"},  # OAEP without its parameters
        "encrypted_key": b"\x01" * 256,
    }
    kari = cms.KeyAgreeRecipientInfo(
        {
            "version": "v3",
            "originator": cms.OriginatorIdentifierOrKey(
                name="originator_key",
                value={"algorithm": {"algorithm": "ec"}, "public_key": b"\x04" + b"\x02" * 64},  # no curve
            ),
            "key_encryption_algorithm": {"algorithm": "aes128_wrap"},
            "recipient_encrypted_keys": [
                {
                    "rid": cms.KeyAgreementRecipientIdentifier(name="issuer_and_serial_number", value=_ours()),
                    "encrypted_key": b"\x03" * 24,
                }
            ],
        }
    )
    pwri = cms.PasswordRecipientInfo(
        {"version": "v0", "key_encryption_algorithm": {"algorithm": "aes256_wrap"}, "encrypted_key": b"\x04" * 40}
    )
    kekri = cms.KEKRecipientInfo(
        {
            "version": "v4",
            "kekid": {"key_identifier": b"kek"},
            "key_encryption_algorithm": {"algorithm": "aes128_wrap"},
            "encrypted_key": b"\x05" * 24,
        }
    )
    ori = cms.OtherRecipientInfo({"ori_type": "1.2.3.4", "ori_value": core.Null()})
    no_iv = cms.ContentInfo.load(valid_envelope())["content"].copy()
    no_iv["encrypted_content_info"]["content_encryption_algorithm"] = {"algorithm": ContentCipher.AES128_CBC.value}
    many = cms.ContentInfo.load(valid_envelope())["content"].copy()
    many["recipient_infos"] = [many["recipient_infos"][0]] * 40
    not_ours = "the envelope is not addressed to this RA certificate"
    return {
        "kari without parameters": (_with_recipient(cms.RecipientInfo(name="kari", value=kari)), not_ours),
        "pwri": (_with_recipient(cms.RecipientInfo(name="pwri", value=pwri)), not_ours),
        "kekri": (_with_recipient(cms.RecipientInfo(name="kekri", value=kekri)), not_ours),
        "ori": (_with_recipient(cms.RecipientInfo(name="ori", value=ori)), not_ours),
        "ktri OAEP without parameters": (
            _with_recipient(cms.RecipientInfo(name="ktri", value=cms.KeyTransRecipientInfo(ktri_fields))),
            "key transport other than RSA PKCS#1 v1.5 is not accepted",
        ),
        "content encryption without IV": (_content_info(no_iv), "content encryption IV is missing"),
        "40 recipients": (_content_info(many), "EnvelopedData has over 16 recipients"),
        "IV parameters nested 40000 deep": (_deep_iv(), "EnvelopedData is malformed"),
        "nested 40000 deep": (nested(40_000, indefinite=False), "EnvelopedData is malformed"),
        "nested 40000 deep, BER indefinite": (nested(40_000, indefinite=True), "EnvelopedData is malformed"),
        "length of 2^64 - 1": (huge_length(8, 0xFF), "EnvelopedData is malformed"),
    }


async def signed(content: bytes) -> bytes:
    """``content`` signed as a SCEP client signs a PKIOperation (self-signed certificate)."""
    key, certificate = client()
    return await sign_data(SoftwareSigner("client", key), certificate, content)


@functools.cache
def client() -> tuple[Any, x509.Certificate]:
    return self_signed("fuzz SCEP client", key_spec="rsa-2048")


def _tlv(tag: int, *parts: bytes) -> bytes:
    body = b"".join(parts)
    return bytes([tag]) + _length(len(body)) + body


def _deep_iv() -> bytes:
    """The valid envelope with its AES-CBC parameters (the IV, an ANY) nested 40,000 deep."""
    enveloped = cms.ContentInfo.load(valid_envelope())["content"]
    eci = enveloped["encrypted_content_info"]
    algorithm = _tlv(0x30, bytes(eci["content_encryption_algorithm"]["algorithm"].dump()), _sequences(40_000, False))
    eci_der = _tlv(0x30, bytes(eci["content_type"].dump()), algorithm, bytes(eci["encrypted_content"].dump()))
    body = _tlv(0x30, bytes(enveloped["version"].dump()), bytes(enveloped["recipient_infos"].dump()), eci_der)
    return _tlv(0x30, bytes(core.ObjectIdentifier(ENVELOPED).dump()), _tlv(0xA0, body))


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _sequences(depth: int, indefinite: bool) -> bytes:
    """SEQUENCE inside SEQUENCE ``depth`` deep around a NULL (about 4 to 5 bytes a level)."""
    if indefinite:
        return b"\x30\x80" * depth + b"\x05\x00" + b"\x00\x00" * depth
    headers, size = [], 2
    for _ in range(depth):
        header = b"\x30" + _length(size)
        headers.append(header)
        size += len(header)
    return b"".join(reversed(headers)) + b"\x05\x00"


def nested(depth: int, indefinite: bool, content_type: str = ENVELOPED) -> bytes:
    """A ContentInfo whose content is `_sequences` (under the size limit up to about 40,000
    levels, so the parser, not the limit, meets the depth)."""
    inner = _sequences(depth, indefinite)
    oid = bytes(core.ObjectIdentifier(content_type).dump())
    explicit = b"\xa0" + _length(len(inner)) + inner
    return b"\x30" + _length(len(oid) + len(explicit)) + oid + explicit


def huge_length(prefix_octets: int, fill: int) -> bytes:
    """A SEQUENCE claiming up to 2^64 bytes of content, followed by a few real ones."""
    return b"\x30" + bytes([0x80 | prefix_octets]) + bytes([fill]) * prefix_octets + b"\x06\x03\x2a\x03\x04"


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
    for name, (der, refusal) in hostile_envelopes().items():
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
    seeds = st.sampled_from(sorted(hostile_envelopes().items())).flatmap(lambda item: mutated(item[1][0]))
    message = asyncio.run(signed(valid_envelope()))
    depth = st.integers(100, 40_000)
    shapes = st.one_of(
        seeds,
        mutated(valid_envelope()),
        mutated(message),
        st.tuples(depth, st.booleans(), st.sampled_from([ENVELOPED, SIGNED])).map(lambda a: nested(*a)),
        st.tuples(st.integers(1, 8), st.sampled_from([0x00, 0x7F, 0xFF])).map(lambda a: huge_length(*a)),
        st.binary(min_size=1, max_size=16).map(lambda tail: valid_envelope() + tail),  # extended
        st.binary(max_size=2048),
    )

    @fuzz_settings(3)
    @given(shapes)
    @example(nested(40_000, indefinite=False, content_type=SIGNED))
    @example(nested(40_000, indefinite=True, content_type=SIGNED))
    @example(message[:-1])
    @example(valid_envelope()[:-1])
    @example(valid_envelope() + b"\x00")
    @example(b"")
    def check(data: bytes) -> None:
        runs[0] += 1
        every_parser(data)

    started = time.monotonic()
    check()
    _counted("scep hostile CMS", runs, started)
