"""The PKCS#11 signer against a real SoftHSM2 token.

Reliability IDs (docs/reliability.md) covered here: ST-08 (session lost), ST-09 (a call that
hangs is abandoned; the issuance-level half, no second signature for the serial, is in
test_hsm_faults.py), ST-10 (wrong PIN), CORE-11 (verify every signature before it leaves the signer).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.asymmetric.utils import NoDigestInfo, Prehashed
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from pkcs11 import exceptions as p11err
from pkcs11.constants import Attribute

from ca.errors import ConfigError, SignerUnavailable
from ca.keys import default_hash
from ca.signers.pkcs11 import Pkcs11Signer, generate_token_key, shutdown_modules
from ca.signers.pkcs11_uri import Pkcs11Uri, parse_pkcs11_uri

MakeSigner = Callable[..., Pkcs11Signer]
SPECS = ["ec-p256", "ec-p384", "rsa-2048"]
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def token_uri(token: str, label: str) -> str:
    return f"pkcs11:token={quote(token, safe='')};object={quote(label, safe='')}"


def fresh_label(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def verify(
    public: CertificatePublicKeyTypes,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None,
) -> None:
    """Verify with the signer's public key the way a relying party would."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        assert hash_algorithm is not None
        public.verify(signature, data, ec.ECDSA(hash_algorithm))
    elif isinstance(public, rsa.RSAPublicKey):
        assert hash_algorithm is not None
        public.verify(signature, data, padding.PKCS1v15(), hash_algorithm)
    elif isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(signature, data)
    else:
        raise AssertionError(f"unexpected key {public!r}")


def sig_hash(signer: Pkcs11Signer) -> hashes.SHA256 | hashes.SHA384 | None:
    """The hash a CA would pick for this key (ca.keys.default_hash, narrowed for the builders)."""
    chosen = default_hash(signer.public_key())
    if chosen is None:
        return None
    return hashes.SHA384() if isinstance(chosen, hashes.SHA384) else hashes.SHA256()


def direct_sign(key: CertificateIssuerPrivateKeyTypes, data: bytes) -> bytes:
    """key.sign() with the call shape cryptography's builders use."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key.sign(data)


def self_signed_builder(signer: Pkcs11Signer, cn: str = "Tetra Test CA") -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(name(cn))
        .issuer_name(name(cn))
        .public_key(signer.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )


async def ca_cert(signer: Pkcs11Signer) -> x509.Certificate:
    builder = self_signed_builder(signer)
    algorithm = sig_hash(signer)
    return await signer.run(lambda: builder.sign(signer.private_key(), algorithm))


class TokenSpy:
    """Wraps the signer's low-level token sign call to see who calls it and when."""

    def __init__(self, signer: Pkcs11Signer, monkeypatch: pytest.MonkeyPatch, delay: float = 0.0):
        self.threads: set[int] = set()
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        self._delay = delay
        original = signer._raw_sign

        def spy(key: Any, data: bytes, mechanism: Any) -> bytes:
            with self._lock:
                self.threads.add(threading.get_ident())
                self.calls += 1
                self.active += 1
                self.max_active = max(self.max_active, self.active)
            try:
                if self._delay:
                    time.sleep(self._delay)
                return original(key, data, mechanism)
            finally:
                with self._lock:
                    self.active -= 1

        monkeypatch.setattr(signer, "_raw_sign", spy)


# -- RFC 7512 URIs -------------------------------------------------------------


def test_uri_parses_rfc7512_example() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=My%20Token;object=ca-key;id=%01%02;serial=DECC0401648;slot-id=7"
        "?pin-source=file:/etc/tetra/hsm.pin&module-path=/usr/lib/softhsm/libsofthsm2.so"
    )
    assert uri == Pkcs11Uri(
        token="My Token",
        object="ca-key",
        id=b"\x01\x02",
        serial="DECC0401648",
        slot_id=7,
        pin_source="file:/etc/tetra/hsm.pin",
        module_path="/usr/lib/softhsm/libsofthsm2.so",
    )
    assert uri.label == "ca-key"
    assert parse_pkcs11_uri(str(uri)) == uri


def test_uri_edge_cases() -> None:
    assert parse_pkcs11_uri("pkcs11:") == Pkcs11Uri()
    assert parse_pkcs11_uri("PKCS11:object=a&b").object == "a&b"  # '&' is data in the path
    assert parse_pkcs11_uri("pkcs11:object=%E2%82%AC").object == "\u20ac"
    assert parse_pkcs11_uri("pkcs11:token=").token == ""
    uri = parse_pkcs11_uri("pkcs11:type=private;x-vendor=1?x-q=2")
    assert uri.type == "private"
    assert uri.vendor_path == (("x-vendor", "1"),)
    assert uri.vendor_query == (("x-q", "2"),)
    assert parse_pkcs11_uri(str(uri)) == uri


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("pkcs12:token=a", "must start with"),
        ("token=a", "must start with"),
        ("pkcs11:token=a;token=b", "appears twice"),
        ("pkcs11:token=My Token", "percent-encoded"),
        ("pkcs11:object=a/b", "percent-encoded"),
        ("pkcs11:id=%0", "bad percent escape"),
        ("pkcs11:id=%zz", "bad percent escape"),
        ("pkcs11:object=%FF", "not valid UTF-8"),
        ("pkcs11:slot-id=abc", "decimal"),
        ("pkcs11:type=secret", "type must be"),
        ("pkcs11:library-version=x", "library-version"),
        ("pkcs11:colour=blue", "unknown path attribute"),
        ("pkcs11:token", "name=value"),
        ("pkcs11:;object=a", "name=value"),
        ("pkcs11:object=a?colour=blue", "unknown query attribute"),
        ("pkcs11:module-path=/x", "query part"),
        ("pkcs11:object=a?token=b", "path part"),
        ("pkcs11:object=a?module-name=x&module-path=/y", "not both"),
        ("pkcs11:object=a#frag", "fragment"),
    ],
)
def test_uri_rejects_bad_input(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_pkcs11_uri(text)


def test_uri_refuses_inline_pin() -> None:
    with pytest.raises(ValueError, match="pin-value is refused") as info:
        parse_pkcs11_uri("pkcs11:token=t;object=k?pin-value=98765")
    assert "98765" not in str(info.value)
    with pytest.raises(ValueError, match="query part"):
        parse_pkcs11_uri("pkcs11:token=t;pin-value=98765")


# -- signing with cryptography's builders ---------------------------------------


@pytest.mark.parametrize("spec", SPECS)
async def test_sign_certificate(make_hsm_signer: MakeSigner, spec: str) -> None:
    signer = make_hsm_signer(spec)
    key = signer.private_key()
    assert isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey))
    builder = self_signed_builder(signer)
    algorithm = sig_hash(signer)
    cert = await signer.run(lambda: builder.sign(signer.private_key(), algorithm))

    assert cert.public_key() == signer.public_key()
    cert.verify_directly_issued_by(cert)
    verify(signer.public_key(), cert.signature, cert.tbs_certificate_bytes, algorithm)


@pytest.mark.parametrize("spec", SPECS)
async def test_sign_crl(make_hsm_signer: MakeSigner, spec: str) -> None:
    signer = make_hsm_signer(spec)
    issuer = await ca_cert(signer)
    revoked = x509.RevokedCertificateBuilder().serial_number(12345).revocation_date(NOW - dt.timedelta(hours=1)).build()
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(NOW)
        .next_update(NOW + dt.timedelta(days=1))
        .add_revoked_certificate(revoked)
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    algorithm = sig_hash(signer)
    crl = await signer.run(lambda: builder.sign(signer.private_key(), algorithm))

    assert crl.is_signature_valid(signer.public_key())
    assert crl.get_revoked_certificate_by_serial_number(12345) is not None
    verify(signer.public_key(), crl.signature, crl.tbs_certlist_bytes, algorithm)


@pytest.mark.parametrize("spec", SPECS)
async def test_sign_ocsp_response(make_hsm_signer: MakeSigner, spec: str) -> None:
    signer = make_hsm_signer(spec)
    responder = await ca_cert(signer)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf_builder = (
        x509.CertificateBuilder()
        .subject_name(name("leaf.example"))
        .issuer_name(responder.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=7))
    )
    algorithm = sig_hash(signer)
    leaf = await signer.run(lambda: leaf_builder.sign(signer.private_key(), algorithm))
    leaf.verify_directly_issued_by(responder)

    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=responder,
            algorithm=hashes.SHA256(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW,
            next_update=NOW + dt.timedelta(hours=12),
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, responder)
        .certificates([responder])
    )
    response = await signer.run(lambda: builder.sign(signer.private_key(), algorithm))

    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == leaf.serial_number
    verify(signer.public_key(), response.signature, response.tbs_response_bytes, algorithm)
    reparsed = ocsp.load_der_ocsp_response(response.public_bytes(serialization.Encoding.DER))
    verify(responder.public_key(), reparsed.signature, reparsed.tbs_response_bytes, algorithm)


async def test_ed25519_key_on_token(make_hsm_signer: MakeSigner) -> None:
    """SoftHSM offers CKM_EC_EDWARDS_KEY_PAIR_GEN; certificates sign with CKM_EDDSA."""
    signer = make_hsm_signer("ed25519")
    assert isinstance(signer.private_key(), ed25519.Ed25519PrivateKey)
    builder = self_signed_builder(signer)
    cert = await signer.run(lambda: builder.sign(signer.private_key(), None))
    cert.verify_directly_issued_by(cert)
    key = signer.private_key()
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    signature = await asyncio.to_thread(key.sign, b"message")
    verify(signer.public_key(), signature, b"message", None)


# -- threads -------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["ec-p256", "rsa-2048"])
async def test_direct_sign_from_another_thread(
    make_hsm_signer: MakeSigner, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    """sign() off the token thread is handed to the token thread and waited for."""
    signer = make_hsm_signer(spec)
    spy = TokenSpy(signer, monkeypatch)
    key = signer.private_key()

    signature = await asyncio.to_thread(direct_sign, key, b"from a worker thread")
    verify(signer.public_key(), signature, b"from a worker thread", hashes.SHA256())

    results: list[bytes] = []
    thread = threading.Thread(target=lambda: results.append(direct_sign(key, b"plain thread")))
    thread.start()
    await asyncio.to_thread(thread.join, 10)
    assert len(results) == 1
    verify(signer.public_key(), results[0], b"plain thread", hashes.SHA256())

    assert spy.threads == {signer.token_thread_ident}
    assert threading.get_ident() not in spy.threads


async def test_twenty_concurrent_signers_share_one_thread(
    make_hsm_signer: MakeSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """20 tasks (half via run(), half from worker threads): one token thread, no overlap."""
    signer = make_hsm_signer("ec-p256")
    other = make_hsm_signer("rsa-2048")  # a second key on the same module shares the thread
    assert other.token_thread_ident == signer.token_thread_ident
    spy = TokenSpy(signer, monkeypatch, delay=0.002)
    key = signer.private_key()

    async def one(i: int) -> tuple[bytes, bytes]:
        data = f"message {i}".encode()
        if i % 2:
            return data, await signer.run(lambda: direct_sign(key, data))
        return data, await asyncio.to_thread(direct_sign, key, data)

    results = await asyncio.gather(*(one(i) for i in range(20)))

    for data, signature in results:
        verify(signer.public_key(), signature, data, hashes.SHA256())
    assert spy.calls == 20
    assert spy.max_active == 1
    assert spy.threads == {signer.token_thread_ident}


async def test_event_loop_does_not_wait_for_a_stuck_token(make_hsm_signer: MakeSigner) -> None:
    """ST-09: a call that outlives call_timeout becomes SignerUnavailable; the loop stays free.
    (Through the issuer, with no second signature for the serial: tests/hsm/test_hsm_faults.py.)"""
    signer = make_hsm_signer("ec-p256", call_timeout=0.2)
    started = time.monotonic()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while time.monotonic() - started < 0.3:
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    with pytest.raises(SignerUnavailable, match="no answer within"):
        await signer.run(lambda: time.sleep(0.6))
    await tick_task
    assert ticks >= 10
    await asyncio.sleep(0.5)  # let the stuck call finish before the next test
    await signer.check()


# -- what the key is and is not --------------------------------------------------


@pytest.mark.parametrize("spec", ["ec-p256", "rsa-2048"])
async def test_key_is_not_extractable(make_hsm_signer: MakeSigner, spec: str) -> None:
    signer = make_hsm_signer(spec)
    key = signer.private_key()
    with pytest.raises(TypeError, match="cannot be exported"):
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    with pytest.raises(TypeError, match="cannot be exported"):
        key.private_numbers()  # type: ignore[union-attr]
    secret = Attribute.PRIVATE_EXPONENT if spec.startswith("rsa") else Attribute.VALUE

    def read_from_token() -> tuple[dict[Attribute, Any], BaseException | None]:
        token_key = signer._key
        assert token_key is not None
        flags = token_key.get_attributes(
            [
                Attribute.SENSITIVE,
                Attribute.EXTRACTABLE,
                Attribute.ALWAYS_SENSITIVE,
                Attribute.NEVER_EXTRACTABLE,
                Attribute.TOKEN,
                Attribute.PRIVATE,
            ]
        )
        try:
            token_key[secret]
        except p11err.PKCS11Error as exc:
            return flags, exc
        return flags, None

    flags, refusal = await signer.run(read_from_token)
    assert flags == {
        Attribute.SENSITIVE: True,
        Attribute.EXTRACTABLE: False,
        Attribute.ALWAYS_SENSITIVE: True,
        Attribute.NEVER_EXTRACTABLE: True,
        Attribute.TOKEN: True,
        Attribute.PRIVATE: True,
    }
    assert isinstance(refusal, p11err.AttributeSensitive)


async def test_rsa_hash_choices(make_hsm_signer: MakeSigner) -> None:
    signer = make_hsm_signer("rsa-2048")
    key = signer.private_key()
    public = signer.public_key()
    assert isinstance(key, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey)
    for algorithm in (hashes.SHA256(), hashes.SHA384(), hashes.SHA512()):
        signature = await signer.run(partial(key.sign, b"x", padding.PKCS1v15(), algorithm))
        public.verify(signature, b"x", padding.PKCS1v15(), algorithm)
    digest = hashes.Hash(hashes.SHA384())
    digest.update(b"prehashed")
    prehashed = digest.finalize()
    signature = await asyncio.to_thread(key.sign, prehashed, padding.PKCS1v15(), Prehashed(hashes.SHA384()))
    public.verify(signature, b"prehashed", padding.PKCS1v15(), hashes.SHA384())
    raw = await asyncio.to_thread(key.sign, b"raw block", padding.PKCS1v15(), NoDigestInfo())
    assert public.recover_data_from_signature(raw, padding.PKCS1v15(), None) == b"raw block"
    with pytest.raises(UnsupportedAlgorithm):
        key.sign(b"x", padding.PKCS1v15(), hashes.SHA1())
    with pytest.raises(UnsupportedAlgorithm):
        key.sign(b"x", padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())


async def test_decrypt_pkcs1v15(make_hsm_signer: MakeSigner) -> None:
    """The SCEP RA key decrypts inside the token; a CA key is not allowed to."""
    ra = make_hsm_signer("rsa-2048", decrypt=True)
    public = ra.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    ciphertext = public.encrypt(b"content-encryption key", padding.PKCS1v15())

    assert await ra.run(lambda: ra.decrypt(ciphertext)) == b"content-encryption key"
    key = ra.private_key()
    assert isinstance(key, rsa.RSAPrivateKey)
    plain = await asyncio.to_thread(key.decrypt, ciphertext, padding.PKCS1v15())
    assert plain == b"content-encryption key"
    with pytest.raises(ValueError, match="decryption failed"):
        await ra.run(lambda: ra.decrypt(b"\x00" * 256))

    ca = make_hsm_signer("rsa-2048")
    with pytest.raises(SignerUnavailable, match="CKA_DECRYPT"):
        await ca.run(lambda: ca.decrypt(ciphertext))
    ec_signer = make_hsm_signer("ec-p256")
    with pytest.raises(SignerUnavailable, match="not RSA"):
        ec_signer.decrypt(ciphertext)


# -- failures --------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["ec-p256", "rsa-2048"])
async def test_st08_session_closed_behind_our_back_is_reopened(
    make_hsm_signer: MakeSigner, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    """ST-08: the session dies under the signer; the next sign re-opens it transparently."""
    signer = make_hsm_signer(spec)
    spy = TokenSpy(signer, monkeypatch)
    old_session = signer._session
    assert old_session is not None
    await signer.run(old_session.close)

    signature = await signer.run(lambda: direct_sign(signer.private_key(), b"after loss"))
    verify(signer.public_key(), signature, b"after loss", hashes.SHA256())
    assert signer._session is not None and signer._session is not old_session
    assert spy.calls == 2  # the failed attempt and the one retry

    # Also from a non-token thread, and through a builder.
    signature = await asyncio.to_thread(direct_sign, signer.private_key(), b"again")
    verify(signer.public_key(), signature, b"again", hashes.SHA256())
    await ca_cert(signer)


async def test_st08_token_logout_is_recovered(make_hsm_signer: MakeSigner) -> None:
    """ST-08: the token logs the process out (all private handles die): log in again."""
    first = make_hsm_signer("ec-p256")
    second = make_hsm_signer("rsa-2048")

    def log_out() -> None:
        for record in first._module._logins.values():
            assert record.session is not None
            record.session.close()  # C_Logout + C_CloseSession

    await first.run(log_out)
    for signer in (first, second):
        signature = await signer.run(partial(direct_sign, signer.private_key(), b"relogin"))
        verify(signer.public_key(), signature, b"relogin", hashes.SHA256())
        await signer.check()


async def test_st08_token_gone_gives_signer_unavailable(
    make_hsm_signer: MakeSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ST-08: retried at most once; then SignerUnavailable naming the signer, never raw pkcs11."""
    signer = make_hsm_signer("ec-p256")
    attempts = 0

    def broken(key: Any, data: bytes, mechanism: Any) -> bytes:
        nonlocal attempts
        attempts += 1
        raise p11err.DeviceRemoved()

    monkeypatch.setattr(signer, "_raw_sign", broken)
    with pytest.raises(SignerUnavailable) as info:
        await signer.run(lambda: direct_sign(signer.private_key(), b"x"))
    assert attempts == 2
    assert f"signer {signer.name}: token tetra-test unavailable" in str(info.value)
    assert "DeviceRemoved" in str(info.value)
    with pytest.raises(SignerUnavailable):
        await asyncio.to_thread(direct_sign, signer.private_key(), b"x")
    with pytest.raises(SignerUnavailable):
        await signer.check()

    monkeypatch.undo()  # the token is back
    await signer.check()


@pytest.mark.parametrize("spec", ["ec-p256", "ec-p384", "rsa-2048", "ed25519"])
async def test_core11_corrupted_signature_is_refused(
    make_hsm_signer: MakeSigner, monkeypatch: pytest.MonkeyPatch, spec: str
) -> None:
    """CORE-11: a signature flipped by a 'fault' never leaves the signer."""
    signer = make_hsm_signer(spec)
    original = signer._raw_sign

    def faulty(key: Any, data: bytes, mechanism: Any) -> bytes:
        signature = bytearray(original(key, data, mechanism))
        signature[len(signature) // 3] ^= 0x01
        return bytes(signature)

    monkeypatch.setattr(signer, "_raw_sign", faulty)
    with pytest.raises(SignerUnavailable, match="does not verify"):
        await asyncio.to_thread(direct_sign, signer.private_key(), b"payload")
    builder = self_signed_builder(signer)
    algorithm = sig_hash(signer)
    with pytest.raises(SignerUnavailable, match="does not verify"):
        await signer.run(lambda: builder.sign(signer.private_key(), algorithm))
    with pytest.raises(SignerUnavailable, match="does not verify"):
        await signer.check()


async def test_st10_wrong_pin_is_a_clear_config_error(
    softhsm_module: str, softhsm_token: str, softhsm_pin: str
) -> None:
    """ST-10: a wrong PIN fails open() with a clear message, no PIN and no raw pkcs11 error."""
    label = fresh_label("pin")
    uri = token_uri(softhsm_token, label)
    generate_token_key(softhsm_module, uri, "ec-p256", softhsm_pin)
    shutdown_modules()  # start with nobody logged in, so the token itself checks the PIN

    with pytest.raises(ConfigError) as info:
        await Pkcs11Signer.open("ca", softhsm_module, uri, "000000")
    message = str(info.value)
    assert "signer ca" in message and "refused the PIN" in message
    assert "000000" not in message and softhsm_pin not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__

    good = await Pkcs11Signer.open("ca", softhsm_module, uri, softhsm_pin.encode())
    try:
        # Already logged in: the token would not look at a second PIN; the signer does.
        with pytest.raises(ConfigError, match="PIN differs") as info:
            await Pkcs11Signer.open("ca2", softhsm_module, uri, "000000")
        assert "000000" not in str(info.value)
        assert info.value.__cause__ is None
        await good.check()
    finally:
        await good.close()


async def test_open_errors_are_config_errors(softhsm_module: str, softhsm_token: str, softhsm_pin: str) -> None:
    missing = token_uri(softhsm_token, fresh_label("absent"))
    with pytest.raises(ConfigError, match="no private key"):
        await Pkcs11Signer.open("ca", softhsm_module, missing, softhsm_pin)
    with pytest.raises(ConfigError, match="no initialised token"):
        await Pkcs11Signer.open("ca", softhsm_module, token_uri("no-such-token", "k"), softhsm_pin)
    with pytest.raises(ConfigError, match="no such file"):
        await Pkcs11Signer.open("ca", "/nonexistent/libpkcs11.so", missing, softhsm_pin)
    with pytest.raises(ConfigError, match="pin-value"):
        await Pkcs11Signer.open("ca", softhsm_module, missing + "?pin-value=1", softhsm_pin)
    with pytest.raises(ConfigError, match="type=private"):
        await Pkcs11Signer.open("ca", softhsm_module, missing + ";type=cert", softhsm_pin)
    with pytest.raises(ConfigError, match="object="):
        await Pkcs11Signer.open("ca", softhsm_module, "pkcs11:token=x", softhsm_pin)
    # The module path may also come from the URI itself.
    label = fresh_label("uri-module")
    uri = token_uri(softhsm_token, label) + f"?module-path={softhsm_module}"
    generate_token_key("", uri, "ec-p256", softhsm_pin)
    signer = await Pkcs11Signer.open("ca", "", uri, softhsm_pin)
    await signer.check()
    await signer.close()


async def test_generate_refuses_existing_label(softhsm_module: str, softhsm_token: str, softhsm_pin: str) -> None:
    uri = token_uri(softhsm_token, fresh_label("dup"))
    generate_token_key(softhsm_module, uri, "ec-p256", softhsm_pin)
    with pytest.raises(ConfigError, match="already has a key labelled"):
        generate_token_key(softhsm_module, uri, "rsa-2048", softhsm_pin)
    with pytest.raises(ConfigError, match="unknown key type"):
        generate_token_key(softhsm_module, token_uri(softhsm_token, fresh_label("bad")), "dsa-1024", softhsm_pin)
    with pytest.raises(ConfigError, match="object="):
        generate_token_key(softhsm_module, "pkcs11:token=tetra-test", "ec-p256", softhsm_pin)


async def test_check_close_and_protocol_shape(make_hsm_signer: MakeSigner) -> None:
    signer = make_hsm_signer("ec-p384")
    key = signer.private_key()
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp384r1" and key.key_size == 384
    assert key.public_key() == signer.public_key()
    assert signer.key_type == "ec"
    with pytest.raises(NotImplementedError):
        key.exchange(ec.ECDH(), ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(UnsupportedAlgorithm):
        key.sign(b"x", ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    await signer.check()
    await signer.close()
    with pytest.raises(SignerUnavailable, match="closed"):
        await signer.check()
    with pytest.raises(SignerUnavailable, match="closed"):
        await asyncio.to_thread(direct_sign, key, b"x")
