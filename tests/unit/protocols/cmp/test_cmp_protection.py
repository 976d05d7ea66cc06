"""MAC and signature protection: the openssl vectors verify with the right secret or certificate
and not with a wrong one (CMP-01, CMP-02); PBM parameters are bounded before any key
derivation (CMP-03); what we create, we verify, and PBMAC1 agrees with hashlib's PBKDF2."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.der import decoder as der_decoder
from pyasn1_alt_modules import rfc5280

from ca.errors import SignerUnavailable
from ca.keys import generate_private_key
from ca.signers.software import SoftwareSigner
from protocols.cmp import bodies
from protocols.cmp.config import MacLimits
from protocols.cmp.der import algorithm_identifier, integer, octet_string, sequence
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.message import PkiMessage, decode_message
from protocols.cmp.pbm import (
    HMAC_SHA1,
    PASSWORD_BASED_MAC,
    Derivation,
    mac_scheme,
    password_based_mac_algorithm,
    pbmac1_algorithm,
)
from protocols.cmp.protection import MacKey, verify_mac, verify_signature_protection
from protocols.cmp.reply import MacProtection, SignatureProtection, build_reply
from tests.helpers import CountingSigner
from tests.pkilint_check import assert_certificate_lints_clean
from tests.unit.protocols.cmp.cmp_vectors import (
    CA_NAME,
    SECRET,
    certificate,
    mac_vectors,
    server_signer,
    signed_vectors,
    vector,
)

SHA256 = "2.16.840.1.101.3.4.2.1"
HMAC_SHA256 = "1.2.840.113549.2.9"


class CountingDerivation(Derivation):
    """Counts key derivations: a refusal must leave both counters at zero (CMP-03)."""

    def __init__(self) -> None:
        self.owf = 0
        self.pbkdf2_runs = 0

    def owf_iterated(self, hash_name: str, secret: bytes, salt: bytes, iterations: int) -> bytes:
        self.owf += 1
        return super().owf_iterated(hash_name, secret, salt, iterations)

    def pbkdf2(self, hash_name: str, secret: bytes, salt: bytes, iterations: int, length: int) -> bytes:
        self.pbkdf2_runs += 1
        return super().pbkdf2(hash_name, secret, salt, iterations, length)


@pytest.mark.parametrize("name", mac_vectors())
def test_cmp_02_mac_vectors_verify_with_the_secret_and_not_without(name: str) -> None:
    message = decode_message(vector(name))
    verify_mac(message, SECRET, MacLimits())
    with pytest.raises(CmpFailure) as caught:
        verify_mac(message, b"wrong-secret", MacLimits())
    assert caught.value.fail_info is FailInfo.badMessageCheck


@pytest.mark.parametrize("name", signed_vectors())
def test_cmp_02_signed_vectors_verify_with_the_sender_certificate_only(name: str) -> None:
    message = decode_message(vector(name))
    verify_signature_protection(message, message.extra_certs()[0])
    other = "server.pem" if message.extra_certs()[0].subject == certificate("client.pem").subject else "client.pem"
    with pytest.raises(CmpFailure) as caught:
        verify_signature_protection(message, certificate(other))
    assert caught.value.fail_info is FailInfo.badMessageCheck


def test_cmp_01_unprotected_message_is_bad_message_check() -> None:
    raw = vector("ir-mac.req.der")
    unprotected = decode_message(decode_message(raw).protected_part)
    for check in (
        lambda m: verify_mac(m, SECRET, MacLimits()),
        lambda m: verify_signature_protection(m, certificate("client.pem")),
    ):
        with pytest.raises(CmpFailure) as caught:
            check(unprotected)
        assert caught.value.fail_info is FailInfo.badMessageCheck


def test_cmp_02_a_tampered_body_fails_the_mac() -> None:
    raw = bytearray(vector("ir-mac.req.der"))
    raw[raw.index(b"CMP Vector Issued")] ^= 0x01
    with pytest.raises(CmpFailure) as caught:
        verify_mac(decode_message(bytes(raw)), SECRET, MacLimits())
    assert caught.value.fail_info is FailInfo.badMessageCheck


def _algorithm(der: bytes) -> rfc5280.AlgorithmIdentifier:
    value, _ = der_decoder.decode(der, asn1Spec=rfc5280.AlgorithmIdentifier())
    return value


def _pbm(salt: bytes, iterations: int, owf: str = SHA256, mac: str = HMAC_SHA256) -> bytes:
    params = sequence(octet_string(salt), algorithm_identifier(owf), integer(iterations), algorithm_identifier(mac))
    return algorithm_identifier(PASSWORD_BASED_MAC, params)


REFUSED_PBM = {
    "zero iterations": _pbm(b"s" * 16, 0),
    "one iteration": _pbm(b"s" * 16, 1),
    "2^31-1 iterations": _pbm(b"s" * 16, 2**31 - 1),
    "a 20,000-digit iteration count": _pbm(b"s" * 16, 10**20_000),
    "empty salt": _pbm(b"", 1000),
    "huge salt": _pbm(b"s" * 100_000, 1000),
    "unknown OWF (MD5)": _pbm(b"s" * 16, 1000, owf="1.2.840.113549.2.5"),
    "SHA-1 as OWF": _pbm(b"s" * 16, 1000, owf="1.3.14.3.2.26"),
    "unknown MAC": _pbm(b"s" * 16, 1000, mac="1.2.3.4"),
    "PBMAC1 2^31-1 iterations": pbmac1_algorithm(b"s" * 16, 2**31 - 1),
    "PBMAC1 one iteration": pbmac1_algorithm(b"s" * 16, 1),
    "PBMAC1 empty salt": pbmac1_algorithm(b"", 1000),
    "PBMAC1 huge salt": pbmac1_algorithm(b"s" * 100_000, 1000),
    "PBMAC1 key too long": pbmac1_algorithm(b"s" * 16, 1000, length=4096),
    "unknown protection": algorithm_identifier("1.2.3.4"),
}


@pytest.mark.parametrize("label", REFUSED_PBM)
def test_cmp_03_pbm_bounds_refuse_before_any_kdf_work(label: str) -> None:
    """A message carrying the hostile protectionAlg is refused by verify_mac with the counting
    derivation untouched: the bound is checked by structure, before any derivation."""
    message = _mac_protected(REFUSED_PBM[label], b"\x00" * 32)
    derivation = CountingDerivation()
    with pytest.raises(CmpFailure) as caught:
        verify_mac(message, SECRET, MacLimits(), derivation)
    assert caught.value.fail_info in (FailInfo.badAlg, FailInfo.badDataFormat), caught.value.text
    assert (derivation.owf, derivation.pbkdf2_runs) == (0, 0)


@pytest.mark.parametrize(
    ("algorithm", "counter"),
    [(password_based_mac_algorithm(b"s" * 16, 500), "owf"), (pbmac1_algorithm(b"s" * 16, 500), "pbkdf2_runs")],
)
def test_cmp_03_the_counting_seam_sees_an_accepted_derivation(algorithm: bytes, counter: str) -> None:
    """The control for the test above: an accepted scheme does reach the derivation (once)."""
    message = _mac_protected(algorithm, b"\x00" * 32)
    derivation = CountingDerivation()
    with pytest.raises(CmpFailure) as caught:  # the MAC was made with another key
        verify_mac(message, SECRET, MacLimits(), derivation)
    assert caught.value.fail_info is FailInfo.badMessageCheck
    assert getattr(derivation, counter) == 1


def _mac_protected(algorithm: bytes, key: bytes) -> PkiMessage:
    """A genp carrying ``algorithm`` as its protectionAlg, MACed (HMAC-SHA-256) with ``key``."""
    protection = MacProtection(MacKey(algorithm, key, "sha256"), b"kid")
    return decode_message(asyncio.run(build_reply(None, CA_NAME, bodies.genp([]), protection)))


def test_hmac_sha1_mac_is_accepted_only_when_allowed() -> None:
    der = _pbm(b"s" * 16, 1000, mac=HMAC_SHA1)
    mac_scheme(_algorithm(der), der, MacLimits())
    with pytest.raises(CmpFailure):
        mac_scheme(_algorithm(der), der, MacLimits(allow_hmac_sha1=False))


@pytest.mark.parametrize(
    "algorithm",
    [password_based_mac_algorithm(b"salt" * 4, 1000), pbmac1_algorithm(b"salt" * 4, 1000, mac="sha512", length=64)],
    ids=["PasswordBasedMac", "PBMAC1"],
)
async def test_cmp_02_mac_round_trip(algorithm: bytes) -> None:
    scheme = mac_scheme(_algorithm(algorithm), algorithm, MacLimits())
    key = MacKey(algorithm, scheme.derive(SECRET), scheme.mac_hash)
    message = decode_message(await build_reply(None, CA_NAME, bodies.pki_conf(), MacProtection(key, b"ref")))
    derived = verify_mac(message, SECRET, MacLimits())
    assert derived == key
    with pytest.raises(CmpFailure):
        verify_mac(message, SECRET + b"x", MacLimits())


def test_pbmac1_matches_an_independent_pbkdf2() -> None:
    salt = bytes(range(16))
    der = pbmac1_algorithm(salt, 2048, prf="sha384", mac="sha256", length=32)
    scheme = mac_scheme(_algorithm(der), der, MacLimits())
    expected = hashlib.pbkdf2_hmac("sha384", SECRET, salt, 2048, 32)
    assert scheme.derive(SECRET) == expected
    assert MacKey(der, expected, scheme.mac_hash).mac(b"data") == hmac.new(expected, b"data", "sha256").digest()


async def test_cmp_02_signature_round_trip_and_wrong_certificate() -> None:
    protection = SignatureProtection(server_signer(), certificate("server.pem"), (certificate("root.pem"),))
    message = decode_message(await build_reply(None, certificate("server.pem").subject, bodies.pki_conf(), protection))
    assert [c.subject for c in message.extra_certs()] == [
        certificate("server.pem").subject,
        certificate("root.pem").subject,
    ]
    verify_signature_protection(message, certificate("server.pem"))
    with pytest.raises(CmpFailure) as caught:
        verify_signature_protection(message, certificate("client.pem"))
    assert caught.value.fail_info is FailInfo.badMessageCheck


def _self_signed(key: Any) -> x509.Certificate:
    """A CMP signing certificate for ``key``, linted like every certificate a test makes."""
    name = x509.Name.from_rfc4514_string("CN=CMP Signer")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    cert = builder.sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    assert_certificate_lints_clean(cert.public_bytes(Encoding.DER))
    return cert


@pytest.mark.parametrize("key_spec", ["rsa-2048", "ec-p384", "ed25519"])
async def test_cmp_02_signature_round_trip_for_each_key_family(key_spec: str) -> None:
    key = generate_private_key(key_spec)
    cert = _self_signed(key)
    protection = SignatureProtection(SoftwareSigner("cmp", key), cert, hash_name="sha384")
    message = decode_message(await build_reply(None, cert.subject, bodies.pki_conf(), protection))
    verify_signature_protection(message, cert)
    assert message.sender_kid == cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    with pytest.raises(CmpFailure):
        verify_signature_protection(message, certificate("server.pem"))


async def test_a_faulty_signer_is_caught_by_verify_after_sign() -> None:
    """CORE-11: a backend that asks for the check and returns a bad signature releases nothing."""

    class Faulty(CountingSigner):
        async def run(self, work: Any) -> Any:
            await super().run(work)
            return b"\x30\x06\x02\x01\x01\x02\x01\x01"  # a well-formed ECDSA signature of nothing

    protection = SignatureProtection(Faulty(server_signer()), certificate("server.pem"))
    with pytest.raises(SignerUnavailable):
        await build_reply(None, CA_NAME, bodies.pki_conf(), protection)
