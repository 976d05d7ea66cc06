"""CMS (ca/cms/): round trips, interop with the openssl command line both ways, refusals, and fuzzing.

OpenSSL vectors are made at test time from freshly generated keys (no static files):
what `openssl cms -sign/-encrypt` writes we must read, and what we write
`openssl cms -verify/-decrypt` must accept.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from ca.cms import (
    ContentCipher,
    certs_only,
    decrypt_enveloped,
    envelope,
    parse_certs_only,
    parse_signed_data,
    sign_data,
)
from ca.cms.enveloped import THE_ERROR
from ca.cms.scep import (
    OID_MESSAGE_TYPE,
    FailInfo,
    MessageType,
    PkiStatus,
    read_scep_attributes,
    scep_attributes,
)
from ca.der import encode_length
from ca.errors import CAError, FailureReason, SignerUnavailable
from ca.signers.software import SoftwareSigner
from tests.unit.ca.pki_fixtures import FUZZ, OPENSSL, mutate, needs_openssl, pem_private_key

T = TypeVar("T")


def _cert(key: CertificateIssuerPrivateKeyTypes, cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


@functools.cache
def identity(kind: str) -> tuple[CertificateIssuerPrivateKeyTypes, x509.Certificate]:
    """One key and self-signed certificate per kind for the whole module ('rsa', 'rsa2', 'ec')."""
    key: CertificateIssuerPrivateKeyTypes
    key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
    return key, _cert(key, f"test {kind}")


def signer(kind: str) -> SoftwareSigner:
    return SoftwareSigner(kind, identity(kind)[0])


def _write(directory: Path, kind: str) -> tuple[Path, Path]:
    key, cert = identity(kind)
    key_path, cert_path = directory / f"{kind}.key", directory / f"{kind}.pem"
    key_path.write_bytes(pem_private_key(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def openssl(*args: str | Path, stdin: bytes = b"") -> bytes:
    assert OPENSSL is not None
    done = subprocess.run([OPENSSL, *map(str, args)], input=stdin, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


class InsideRunSigner:
    """A Signer whose key may only be touched inside run(), as with an HSM thread; counts runs."""

    def __init__(self, inner: SoftwareSigner, corrupt: bool = False) -> None:
        self.name = inner.name
        self.inner = inner
        self.corrupt = corrupt
        self.inside = False
        self.needs_signature_check = True  # a device that can fault: the signature is checked
        self.runs = 0

    def public_key(self) -> Any:
        return self.inner.public_key()

    def private_key(self) -> Any:
        assert self.inside, "private_key() used outside run()"
        return self.inner.private_key()

    async def run(self, work: Callable[[], T]) -> T:
        self.runs += 1
        self.inside = True
        try:
            result = work()
        finally:
            self.inside = False
        if self.corrupt and isinstance(result, bytes):
            return bytes(b ^ 1 for b in result)  # type: ignore[return-value]
        return result

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None


# -- SignedData ---------------------------------------------------------------


def test_certs_only_round_trip() -> None:
    certs = [identity("rsa")[1], identity("ec")[1]]
    der = certs_only(certs)
    assert set(parse_certs_only(der)) == set(certs)  # a SET OF: DER sorts it, order is not kept
    assert len(asn1_cms.ContentInfo.load(der)["content"]["signer_infos"]) == 0


@needs_openssl
def test_openssl_reads_certs_only() -> None:
    out = openssl("pkcs7", "-inform", "DER", "-print_certs", "-noout", stdin=certs_only([identity("ec")[1]]))
    assert b"subject=CN = test ec" in out


@pytest.mark.parametrize("kind", ["rsa", "ec"])
@pytest.mark.parametrize("digest", ["sha256", "sha512"])
async def test_sign_and_parse_with_scep_attributes(kind: str, digest: str) -> None:
    nonce = os.urandom(16)
    attrs = scep_attributes(
        message_type=MessageType.CERT_REP,
        transaction_id="0123abcd",
        sender_nonce=nonce,
        recipient_nonce=nonce[::-1],
        pki_status=PkiStatus.FAILURE,
        fail_info=FailInfo.BAD_REQUEST,
        fail_info_text="no such profile",
    )
    when = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    wrapped = InsideRunSigner(signer(kind))
    extra = identity("rsa2")[1]
    der = await sign_data(
        wrapped, identity(kind)[1], b"inner", digest=digest, attributes=attrs, certificates=[extra], signing_time=when
    )
    assert wrapped.runs == 1
    message = parse_signed_data(der)
    assert message.content == b"inner"
    assert message.content_type == "1.2.840.113549.1.7.1"
    assert message.signer_certificate == identity(kind)[1]
    assert message.signer_id.serial == identity(kind)[1].serial_number
    assert set(message.certificates) == {identity(kind)[1], extra}
    assert message.digest_algorithm == digest
    assert message.signing_time == when
    scep = read_scep_attributes(message.signed_attributes)
    assert (scep.message_type, scep.transaction_id) == (MessageType.CERT_REP, "0123abcd")
    assert (scep.sender_nonce, scep.recipient_nonce) == (nonce, nonce[::-1])
    assert (scep.pki_status, scep.fail_info, scep.fail_info_text) == (
        PkiStatus.FAILURE,
        FailInfo.BAD_REQUEST,
        "no such profile",
    )


async def test_other_content_type_and_no_signer_certificate() -> None:
    der = await sign_data(
        signer("ec"), identity("ec")[1], b"\x30\x00", content_type="1.2.3.4", include_signer_certificate=False
    )
    with pytest.raises(CAError) as err:
        parse_signed_data(der)
    assert err.value.reason is FailureReason.MALFORMED
    message = parse_signed_data(der, certificates=[identity("rsa")[1], identity("ec")[1]])
    assert (message.content_type, message.content, message.certificates) == ("1.2.3.4", b"\x30\x00", ())


async def test_a_faulty_backend_signature_is_caught() -> None:
    with pytest.raises(SignerUnavailable):
        await sign_data(InsideRunSigner(signer("rsa"), corrupt=True), identity("rsa")[1], b"x")


async def test_caller_mistakes() -> None:
    with pytest.raises(ValueError):
        await sign_data(signer("ec"), identity("ec")[1], b"x", digest="md5")
    with pytest.raises(ValueError):
        await sign_data(signer("ec"), identity("ec")[1], b"x", attributes=[("1.2.840.113549.1.9.4", (b"\x04\x00",))])


async def test_sha1_only_when_allowed() -> None:
    der = await sign_data(signer("rsa"), identity("rsa")[1], b"legacy", digest="sha1")
    with pytest.raises(CAError) as err:
        parse_signed_data(der)
    assert err.value.reason is FailureReason.BAD_ALGORITHM
    assert parse_signed_data(der, allow_sha1=True).digest_algorithm == "sha1"


async def test_tampering_is_refused() -> None:
    der = await sign_data(signer("rsa"), identity("rsa")[1], b"pay 10 dollars")
    changed = der.replace(b"pay 10 dollars", b"pay 99 dollars")
    with pytest.raises(CAError) as err:
        parse_signed_data(changed)
    assert err.value.reason is FailureReason.BAD_SIGNATURE
    assert "messageDigest" in err.value.detail
    info = asn1_cms.ContentInfo.load(der)
    signature = info["content"]["signer_infos"][0]["signature"].native
    broken = der.replace(signature, signature[:-1] + bytes([signature[-1] ^ 1]))
    with pytest.raises(CAError) as err:
        parse_signed_data(broken)
    assert err.value.reason is FailureReason.BAD_SIGNATURE


async def test_limits_and_wrong_type() -> None:
    der = await sign_data(signer("ec"), identity("ec")[1], b"x" * 2000)
    with pytest.raises(CAError, match="limit") as err:
        parse_signed_data(der, max_bytes=1000)
    assert err.value.reason is FailureReason.MALFORMED
    with pytest.raises(CAError, match="content type"):
        parse_signed_data(envelope(b"x", identity("rsa")[1]))
    with pytest.raises(CAError, match=r"trailing|malformed"):
        parse_signed_data(der + b"\x00")


@needs_openssl
@pytest.mark.parametrize("kind", ["rsa", "ec"])
async def test_openssl_verifies_ours(kind: str, tmp_path: Path) -> None:
    _, cert_path = _write(tmp_path, kind)
    attrs = scep_attributes(message_type=MessageType.PKCS_REQ, transaction_id="t1", sender_nonce=os.urandom(16))
    der = await sign_data(signer(kind), identity(kind)[1], b"to openssl", attributes=attrs)
    out = openssl("cms", "-verify", "-inform", "DER", "-CAfile", cert_path, "-binary", stdin=der)
    assert out == b"to openssl"


@needs_openssl
@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("rsa", ["-md", "sha256"]),
        ("rsa", ["-md", "sha512", "-noattr"]),
        ("rsa", ["-md", "sha256", "-keyopt", "rsa_padding_mode:pss"]),
        ("ec", ["-md", "sha384"]),
        ("ec", ["-md", "sha256", "-noattr"]),
    ],
    ids=["rsa-sha256", "rsa-noattr", "rsa-pss", "ec-sha384", "ec-noattr"],
)
def test_we_verify_openssl(kind: str, options: list[str], tmp_path: Path) -> None:
    key_path, cert_path = _write(tmp_path, kind)
    der = openssl(
        "cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-signer", cert_path, "-inkey", key_path,
        *options, stdin=b"from openssl",
    )  # fmt: skip
    message = parse_signed_data(der)
    assert message.content == b"from openssl"
    assert message.signer_certificate == identity(kind)[1]
    assert bool(message.signed_attributes) == ("-noattr" not in options)
    with pytest.raises(CAError) as err:
        parse_signed_data(der.replace(b"from openssl", b"from 0penssl"))
    assert err.value.reason is FailureReason.BAD_SIGNATURE


# -- EnvelopedData ------------------------------------------------------------


@pytest.mark.parametrize("cipher", list(ContentCipher))
async def test_envelope_round_trip(cipher: ContentCipher) -> None:
    plaintext = os.urandom(100)
    der = envelope(plaintext, identity("rsa")[1], cipher=cipher)
    assert await decrypt_enveloped(der, signer("rsa"), identity("rsa")[1], allow_des3=True) == plaintext
    if cipher.legacy:
        with pytest.raises(CAError) as err:
            await decrypt_enveloped(der, signer("rsa"), identity("rsa")[1])
        assert err.value.reason is FailureReason.BAD_ALGORITHM


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + encode_length(len(body)) + body


async def test_constructed_encrypted_content_is_read() -> None:
    """BER, as Go's pkcs7 writes it (micromdm's scepclient): encryptedContent as a constructed [0]
    of OCTET STRING chunks. Decrypted like the primitive form."""
    plaintext = os.urandom(100)
    parsed = asn1_cms.ContentInfo.load(envelope(plaintext, identity("rsa")[1]))["content"]
    eci = parsed["encrypted_content_info"]
    ciphertext = eci["encrypted_content"].native
    chunks = b"".join(_tlv(0x04, ciphertext[i : i + 16]) for i in range(0, len(ciphertext), 16))
    ber_eci = _tlv(0x30, eci["content_type"].dump() + eci["content_encryption_algorithm"].dump() + _tlv(0xA0, chunks))
    enveloped = _tlv(0x30, parsed["version"].dump() + parsed["recipient_infos"].dump() + ber_eci)
    der = _tlv(0x30, core.ObjectIdentifier("1.2.840.113549.1.7.3").dump() + _tlv(0xA0, enveloped))
    assert await decrypt_enveloped(der, signer("rsa"), identity("rsa")[1]) == plaintext


async def test_wrong_recipient_and_wrong_key() -> None:
    der = envelope(b"secret", identity("rsa")[1])
    with pytest.raises(CAError, match="not addressed") as err:
        await decrypt_enveloped(der, signer("rsa2"), identity("rsa2")[1])
    assert err.value.reason is FailureReason.MALFORMED
    # the right certificate but another key: the RSA step fails or gives a random key
    envelopes = [envelope(b"secret", identity("rsa")[1]) for _ in range(4)]
    assert await refusals(envelopes, signer("rsa2"), b"secret") == {(FailureReason.MALFORMED, THE_ERROR)}


async def refusals(variants: list[bytes], key: SoftwareSigner, plaintext: bytes) -> set[tuple[FailureReason, str]]:
    """Decrypt each variant; collect the refusals and check no variant yields the plaintext.

    CBC has no integrity: a wrong content key gives random padding, which is valid about one
    time in 256, and then the envelope decrypts to garbage. That is CMS, not a bug, so a
    variant may decrypt; it must never decrypt to the plaintext, and most must be refused
    (each test passes several variants so a chance pass of all of them is ~2^-32).
    """
    found: set[tuple[FailureReason, str]] = set()
    decrypted = 0
    for variant in variants:
        try:
            result = await decrypt_enveloped(variant, key, identity("rsa")[1])
        except CAError as err:
            found.add((err.reason, err.detail))
        else:
            assert result != plaintext
            decrypted += 1
    assert decrypted < len(variants), "every variant decrypted"
    return found


async def test_bad_padding_and_bad_key_look_the_same() -> None:
    plaintext = b"secret" * 5  # 30 bytes: the last block ends in two padding bytes 0x02
    der = envelope(plaintext, identity("rsa")[1])
    info = asn1_cms.ContentInfo.load(der)
    ciphertext = info["content"]["encrypted_content_info"]["encrypted_content"].native
    encrypted_key = info["content"]["recipient_infos"][0].chosen["encrypted_key"].native
    # Flipping the penultimate block's last byte XORs the last padding byte (0x02 -> 0x58):
    # always invalid padding, whatever the key.
    flipped = bytearray(ciphertext)
    flipped[-17] ^= 0x5A
    bad_padding = der.replace(ciphertext, bytes(flipped))
    with pytest.raises(CAError) as err:
        await decrypt_enveloped(bad_padding, signer("rsa"), identity("rsa")[1])
    padding_refusal = (err.value.reason, err.value.detail)
    bad_keys = [
        der.replace(encrypted_key, encrypted_key[:-1] + bytes([encrypted_key[-1] ^ flip]))
        for flip in (0x5A, 0x01, 0x80, 0xFF)
    ]
    assert await refusals(bad_keys, signer("rsa"), plaintext) == {padding_refusal}
    assert padding_refusal == (FailureReason.MALFORMED, THE_ERROR)


async def test_decryption_goes_through_run() -> None:
    wrapped = InsideRunSigner(signer("rsa"))
    calls: list[bytes] = []

    def decrypt(ciphertext: bytes) -> bytes:
        assert wrapped.inside, "decrypt() used outside run()"
        calls.append(ciphertext)
        return wrapped.inner.decrypt(ciphertext)

    wrapped.decrypt = decrypt  # type: ignore[attr-defined]
    der = envelope(b"hsm", identity("rsa")[1], cipher=ContentCipher.AES128_CBC)
    assert await decrypt_enveloped(der, wrapped, identity("rsa")[1]) == b"hsm"  # type: ignore[arg-type]
    assert (wrapped.runs, len(calls)) == (1, 1)


@needs_openssl
@pytest.mark.parametrize("option", ["-aes256", "-aes128", "-des3"])
async def test_we_decrypt_openssl(option: str, tmp_path: Path) -> None:
    _, cert_path = _write(tmp_path, "rsa")
    der = openssl("cms", "-encrypt", "-binary", option, "-outform", "DER", cert_path, stdin=b"from openssl" * 9)
    assert await decrypt_enveloped(der, signer("rsa"), identity("rsa")[1], allow_des3=True) == b"from openssl" * 9


@needs_openssl
@pytest.mark.parametrize("cipher", [ContentCipher.AES256_CBC, ContentCipher.DES3_CBC])
def test_openssl_decrypts_ours(cipher: ContentCipher, tmp_path: Path) -> None:
    key_path, cert_path = _write(tmp_path, "rsa")
    der = envelope(b"to openssl", identity("rsa")[1], cipher=cipher)
    out = openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-recip", cert_path, "-inkey", key_path, stdin=der)
    assert out == b"to openssl"


# -- fuzzing: only CAError leaves the parsers ----------------------------------


@functools.cache
def samples() -> tuple[bytes, bytes, bytes]:
    attrs = scep_attributes(message_type=MessageType.PKCS_REQ, transaction_id="f", sender_nonce=b"n" * 16)
    signed = asyncio.run(sign_data(signer("ec"), identity("ec")[1], b"fuzz me", attributes=attrs))
    return signed, certs_only([identity("rsa")[1]]), envelope(b"fuzz", identity("rsa")[1])


@st.composite
def mutated(draw: st.DrawFn, which: int) -> bytes:
    return mutate(samples()[which], draw, garbage_size=600)


def _only_caerror(call: Callable[[], object]) -> None:
    try:
        call()
    except CAError as exc:
        assert exc.reason in (FailureReason.MALFORMED, FailureReason.BAD_SIGNATURE, FailureReason.BAD_ALGORITHM)


@FUZZ
@given(mutated(0))
def test_fuzz_parse_signed_data(data: bytes) -> None:
    _only_caerror(lambda: parse_signed_data(data))
    _only_caerror(lambda: read_scep_attributes(parse_signed_data(data).signed_attributes))


@FUZZ
@given(mutated(1))
def test_fuzz_parse_certs_only(data: bytes) -> None:
    _only_caerror(lambda: parse_certs_only(data))


@FUZZ
@given(mutated(2))
def test_fuzz_decrypt_enveloped(data: bytes) -> None:
    _only_caerror(lambda: asyncio.run(decrypt_enveloped(data, signer("rsa"), identity("rsa")[1], allow_des3=True)))


@FUZZ
@given(st.dictionaries(st.sampled_from([OID_MESSAGE_TYPE, "2.16.840.1.113733.1.9.5", "2.16.840.1.113733.1.9.7"]),
                       st.lists(st.binary(max_size=40), max_size=3).map(tuple)))  # fmt: skip
def test_fuzz_read_scep_attributes(attrs: dict[str, tuple[bytes, ...]]) -> None:
    _only_caerror(lambda: read_scep_attributes(attrs))
