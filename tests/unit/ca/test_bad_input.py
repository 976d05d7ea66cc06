"""Bad input to the core: a clear error naming the rule, nothing issued, nothing stored
(docs/reliability.md, Conventions)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from ca.csr import enrollment_from_csr, parse_csr
from ca.enrollment import AuthMethod, Requester
from ca.errors import CAError, FailureReason
from ca.service import CertificateAuthority
from ca.store.repositories import CertificateFilter
from tests.helpers import CountingSigner, enroll, make_csr

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)


async def _assert_nothing_issued(ca: CertificateAuthority, before: int, signer: CountingSigner) -> None:
    after = await ca.certificates.list(CertificateFilter(limit=10_000))
    assert len(after) == before, "a row was stored"
    assert signer.runs == 0, "the CA key was asked to sign"
    events = (await ca.audit.verify()).events
    assert events >= 0


@pytest.fixture
async def counting(ca: CertificateAuthority) -> CountingSigner:
    issuer = ca.issuers[ca.default_issuer]
    proxy = CountingSigner(issuer.signer)
    issuer.signer = proxy
    return proxy


async def _enroll_bytes(ca: CertificateAuthority, data: bytes, profile: str = "tls-server") -> None:
    csr = parse_csr(data)
    await enroll(ca, enrollment_from_csr(csr, protocol="cli", profile_name=profile, requester=OPERATOR))


def _tamper_signature(csr: x509.CertificateSigningRequest) -> bytes:
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x55  # inside the signature BIT STRING
    return bytes(der)


async def test_csr_signature_does_not_verify(ca: CertificateAuthority, counting: CountingSigner) -> None:
    before = len(await ca.certificates.list(CertificateFilter()))
    csr, _ = make_csr(["www.example.com"])
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, _tamper_signature(csr))
    assert err.value.reason in (FailureReason.BAD_SIGNATURE, FailureReason.BAD_CSR)
    await _assert_nothing_issued(ca, before, counting)


@pytest.mark.parametrize(
    ("key_factory", "expected"),
    [
        (lambda: rsa.generate_private_key(65537, 1024), "rsa-1024"),
        (lambda: ec.generate_private_key(ec.SECP192R1()), "ec-p192"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1"),
        (lambda: rsa.generate_private_key(3, 2048), "exponent 3"),
    ],
    ids=["rsa-1024", "p-192", "secp256k1", "rsa-e3"],
)
async def test_weak_or_unsupported_keys_are_refused(
    ca: CertificateAuthority, counting: CountingSigner, key_factory: object, expected: str
) -> None:
    """CORE-07: the refusal names the profile and the key."""
    before = len(await ca.certificates.list(CertificateFilter()))
    try:
        key = key_factory()  # type: ignore[operator]
    except Exception as exc:  # the local OpenSSL may refuse to even make such a key
        pytest.skip(f"cannot generate test key: {exc}")
    csr, _ = make_csr(["www.example.com"], key=key)
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, csr.public_bytes(serialization.Encoding.PEM))
    assert err.value.reason is FailureReason.BAD_PUBLIC_KEY
    assert "profile tls-server" in err.value.detail and expected.split()[0] in err.value.detail
    await _assert_nothing_issued(ca, before, counting)


@pytest.mark.parametrize(
    ("names", "rule"),
    [
        (["email:a@example.com"], "SAN type email not allowed"),
        (["WWW.example.com"], "must be lowercase"),
        (["www.example.com."], "not a valid host name"),
        (["foo_bar.example.com"], "invalid label"),
        (["a.*.example.com"], "invalid label"),
        (["printer.local"], "denied"),
    ],
)
async def test_forbidden_names_name_the_rule(
    ca: CertificateAuthority, counting: CountingSigner, names: list[str], rule: str
) -> None:
    """CORE-08: each refusal says which profile rule refused it."""
    before = len(await ca.certificates.list(CertificateFilter()))
    csr, _ = make_csr(names)
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, csr.public_bytes(serialization.Encoding.PEM))
    assert err.value.reason is FailureReason.REJECTED_BY_POLICY
    assert err.value.detail.startswith("profile tls-server: ") and rule in err.value.detail
    await _assert_nothing_issued(ca, before, counting)


async def test_cn_not_among_sans_is_refused(ca: CertificateAuthority, counting: CountingSigner) -> None:
    csr, _ = make_csr(["www.example.com"], cn="other.example.com")
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, csr.public_bytes(serialization.Encoding.PEM))
    assert "common name" in err.value.detail
    assert counting.runs == 0


async def test_too_many_sans(ca: CertificateAuthority, counting: CountingSigner) -> None:
    csr, _ = make_csr([f"h{i}.example.com" for i in range(101)])
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, csr.public_bytes(serialization.Encoding.PEM))
    assert "limit" in err.value.detail
    assert counting.runs == 0


async def test_unknown_critical_extension_request_is_refused(
    ca: CertificateAuthority, counting: CountingSigner
) -> None:
    """CORE-09: never copied blindly, never silently dropped when critical."""
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00")
    csr, _ = make_csr(["www.example.com"], extra_extensions=[(odd, True)])
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, csr.public_bytes(serialization.Encoding.PEM))
    assert "1.3.6.1.4.1.55555.1" in err.value.detail
    assert counting.runs == 0


async def test_csr_over_64_kib(ca: CertificateAuthority, counting: CountingSigner) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "x" * 60) for _ in range(1200)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    data = csr.public_bytes(serialization.Encoding.DER)
    assert len(data) > 64 * 1024
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, data)
    assert "64" in err.value.detail or "limit" in err.value.detail
    assert counting.runs == 0


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"hello world",
        b"\x30\x82\xff\xff\x00",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END",
        b"\x30" * 5000,
    ],
)
async def test_garbage_instead_of_a_csr(ca: CertificateAuthority, counting: CountingSigner, garbage: bytes) -> None:
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, garbage)
    assert err.value.reason is FailureReason.BAD_CSR
    assert counting.runs == 0


async def test_unknown_profile(ca: CertificateAuthority, counting: CountingSigner) -> None:
    csr, _ = make_csr(["www.example.com"])
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, csr.public_bytes(serialization.Encoding.PEM), profile="nope")
    assert "unknown profile 'nope'" in err.value.detail


async def test_protocol_not_allowed_by_profile(ca: CertificateAuthority, counting: CountingSigner) -> None:
    csr, _ = make_csr(["www.example.com"])
    request = enrollment_from_csr(csr, protocol="acme", profile_name="code-signing", requester=OPERATOR)
    with pytest.raises(CAError) as err:
        await enroll(ca, request)
    assert err.value.detail == "profile code-signing: protocol acme not allowed"


async def test_lint_gate_refuses_before_the_real_key_signs(ca: CertificateAuthority, counting: CountingSigner) -> None:
    """CORE-03: a certificate the CA/B Forum lint rejects is never signed by the CA key.
    An internal name (no public suffix) passes our name rules but not pkilint's."""
    before = len(await ca.certificates.list(CertificateFilter()))
    csr, _ = make_csr(["intranet.corp"])
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, csr.public_bytes(serialization.Encoding.PEM))
    assert "lint" in err.value.detail
    await _assert_nothing_issued(ca, before, counting)


@pytest.mark.parametrize("whose", ["issuing-ca", "root", "ra"])
async def test_certificate_for_one_of_our_own_keys_is_refused(
    ca: CertificateAuthority, counting: CountingSigner, ca_dir: Path, whose: str
) -> None:
    """CORE-12: a leaf carrying the issuing CA's, the root's or the RA's key would let its holder
    speak as the CA; the core refuses it for every protocol (badCSR-like), nothing issued."""
    from ca.config_secrets import read_secret
    from ca.signers.software import load_encrypted_key

    if whose == "root":
        passphrase = read_secret(file=str(ca_dir / "secrets" / "passphrase"))
        key = load_encrypted_key(ca_dir / "keys" / "root.key", passphrase)
    elif whose == "ra":
        key = next(iter(ca.ras.values())).signer.private_key()
    else:
        key = ca.issuers[whose].signer.private_key()
    before = len(await ca.certificates.list(CertificateFilter()))
    csr, _ = make_csr(["www.example.com"], key=key)
    with pytest.raises(CAError) as err:
        await _enroll_bytes(ca, csr.public_bytes(serialization.Encoding.PEM))
    assert err.value.reason is FailureReason.BAD_CSR
    assert "own keys" in err.value.detail
    await _assert_nothing_issued(ca, before, counting)
