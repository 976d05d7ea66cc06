"""Invariants of the issuing core on both stores: one signature per issuance token (CORE-05),
one profile per in-flight issuance (CORE-14), and the CA key signing only TBS bytes that were
linted and durably recorded first (SEC-04)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from sqlalchemy import create_engine, select
from sqlalchemy.engine import Engine

from ca import lint as lint_module
from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, EnrollmentRequest, Issued, Requester
from ca.errors import InternalError, PolicyViolation
from ca.issuer import Intent
from ca.opaque_keys import OpaqueECKey
from ca.revocation.crl import CrlService
from ca.revocation.ocsp import OcspService
from ca.revocation.pointers import install_pointers
from ca.revocation.tables import crls
from ca.service import CertificateAuthority
from ca.store.db import driver_url
from ca.store.repositories import CertificateFilter
from ca.store.tables import audit_log, certificates
from tests.helpers import CountingSigner, GatedSigner, enroll, make_csr
from tests.revocation_support import check_crl, crl_settings, ocsp_settings

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)
ISSUER = "issuing-ca"


def _request(name: str, profile: str = "tls-server") -> EnrollmentRequest:
    csr, _ = make_csr([name])
    return enrollment_from_csr(csr, protocol="cli", profile_name=profile, requester=OPERATOR)


async def _audit_actions(ca: CertificateAuthority, serial: int) -> list[str]:
    target = f"{ISSUER}/{serial:x}"

    def q(conn: Any) -> list[str]:
        rows = conn.execute(select(audit_log.c.action).where(audit_log.c.target == target).order_by(audit_log.c.seq))
        return [r.action for r in rows]

    return await ca.db.read(q)


# -- CORE-05 -------------------------------------------------------------------------------


async def test_issuance_token_is_single_use(ca: CertificateAuthority) -> None:
    """CORE-05: a prepared intent (serial reserved, TBS stored) is signed once. Signing the same
    token again, afterwards or concurrently, is refused before the key is asked: one signature,
    one 'issued' result and audit event per serial."""
    issuer = ca.issuers[ISSUER]
    signer = CountingSigner(issuer.signer)
    issuer.signer = signer
    template = (await ca.decide(_request("once.example.com"))).template

    token = await issuer.prepare(template, Intent(protocol="cli", requester="test"))
    certificate, row_id = await issuer.sign(token)
    with pytest.raises(InternalError, match="already signed once"):
        await issuer.sign(token)
    assert signer.runs == 1
    record = await ca.certificates.get(row_id)
    assert record is not None and record.status == "issued"
    assert record.der == certificate.public_bytes(Encoding.DER)
    assert await _audit_actions(ca, certificate.serial_number) == ["certificate.intent", "certificate.issued"]

    # Two tasks racing with one token: exactly one signs.
    token = await issuer.prepare(template, Intent(protocol="cli", requester="test"))
    results = await asyncio.gather(issuer.sign(token), issuer.sign(token), return_exceptions=True)
    signed = [r for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, InternalError)]
    assert len(signed) == 1 and len(refused) == 1, results
    assert signer.runs == 2
    assert await _audit_actions(ca, token.serial) == ["certificate.intent", "certificate.issued"]
    assert (await ca.audit.verify()).ok


async def test_revocation_while_signing_survives_the_result(ca: CertificateAuthority) -> None:
    """CORE-05 / ST-01 F3: an operator revokes a serial whose intent is still being signed; the
    result write stores the signed certificate but never turns 'revoked' back into 'issued'."""
    issuer = ca.issuers[ISSUER]
    gated = GatedSigner(issuer.signer)
    issuer.signer = gated
    task = asyncio.create_task(enroll(ca, _request("revoked-in-flight.example.com")))
    await asyncio.wait_for(gated.entered.wait(), 10)
    [row] = await ca.certificates.list(CertificateFilter(status="signing"))
    await ca.revoke(ISSUER, row.serial, "keyCompromise", requester="operator")
    gated.gate.set()
    outcome = await task
    assert isinstance(outcome, Issued)
    record = await ca.certificates.get(row.id)
    assert record is not None
    assert record.status == "revoked" and record.revocation_reason == "keyCompromise"
    assert record.der == outcome.certificate.public_bytes(Encoding.DER)
    assert gated.runs == 1
    assert (await ca.audit.verify()).ok


# -- CORE-14 -------------------------------------------------------------------------------

EXTRA_POLICY = ObjectIdentifier("1.3.6.1.4.1.55555.1.14")


def _changed(ca: CertificateAuthority) -> dict[str, Any]:
    """tls-server with another validity, EKU, policies and lint exceptions."""
    old = ca.profile("tls-server")
    new = dataclasses.replace(
        old,
        default_days=30,
        max_days=30,
        extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
        policies=(*old.policies, EXTRA_POLICY),
        lint_ignore=frozenset({"cabf.internal_domain_name"}),
    )
    return {**ca.profiles, "tls-server": new}


def _traits(cert: x509.Certificate) -> tuple[float, list[ObjectIdentifier], list[ObjectIdentifier]]:
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).total_seconds() / 86400
    eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    policies = [p.policy_identifier for p in cert.extensions.get_extension_for_class(x509.CertificatePolicies).value]
    return round(days), eku, policies


@pytest.mark.parametrize("hold", ["lint", "sign"])
async def test_profile_reload_during_issuance_keeps_one_profile(ca: CertificateAuthority, hold: str) -> None:
    """CORE-14: profiles are reloaded while issuances wait in the pkilint gate (before the intent)
    or in the signer (after it). The waiting issuances finish entirely under the profile they
    started with: validity, EKU, policies, and the lint exceptions (a name the old profile's lint
    refuses stays refused although the new profile would accept it). Issuances started after
    the reload get the new profile."""
    issuer = ca.issuers[ISSUER]
    before = _traits((await enroll(ca, _request("before.example.com"))).certificate)
    assert before[1] == [ExtendedKeyUsageOID.SERVER_AUTH] and EXTRA_POLICY not in before[2]

    requests = [_request("held.example.com")]
    if hold == "lint":
        requests.append(_request("held.corp.internal"))  # cabf.internal_domain_name under the old profile
        real_linter = issuer._linter
        assert real_linter is not None
        release = threading.Event()
        waiting: list[str] = []

        def held_linter(der: bytes, profile: str) -> list[str]:
            waiting.append(profile)
            release.wait(10)
            return real_linter(der, profile)

        issuer._linter = held_linter
        tasks = [asyncio.create_task(enroll(ca, r)) for r in requests]
        while len(waiting) < len(tasks):
            await asyncio.sleep(0.01)
        ca.reload_profiles(_changed(ca))
        issuer._linter = real_linter
        release.set()
    else:
        gated = GatedSigner(issuer.signer)
        issuer.signer = gated
        tasks = [asyncio.create_task(enroll(ca, r)) for r in requests]
        await asyncio.wait_for(gated.entered.wait(), 10)
        ca.reload_profiles(_changed(ca))
        gated.gate.set()

    results = await asyncio.gather(*tasks, return_exceptions=True)
    held = results[0]
    assert isinstance(held, Issued), held
    assert _traits(held.certificate) == before
    record = await ca.certificates.get(held.record_id)
    assert record is not None and record.status == "issued"
    if hold == "lint":
        assert isinstance(results[1], PolicyViolation) and "internal_domain_name" in results[1].detail

    after = await enroll(ca, _request("after.example.com"))
    assert isinstance(after, Issued)
    assert _traits(after.certificate) == (
        30,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [
            *before[2],
            EXTRA_POLICY,
        ],
    )


# -- SEC-04 --------------------------------------------------------------------------------


class _RecordingECKey(OpaqueECKey, ec.EllipticCurvePrivateKey):
    """The CA's EC key, reporting every byte string it is asked to sign before signing it."""

    def __init__(self, inner: ec.EllipticCurvePrivateKey, seen: Callable[[bytes], None]) -> None:
        self._inner = inner
        self._public = inner.public_key()
        self._seen = seen

    def sign(self, data: Any, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        self._seen(bytes(data))
        return self._inner.sign(data, signature_algorithm)


class RecordingSigner(CountingSigner):
    """The issuing CA's real signer, with its key reporting each TBS at the moment of signing."""

    def __init__(self, inner: Any, seen: Callable[[bytes], None]) -> None:
        super().__init__(inner)
        key = inner.private_key()
        assert isinstance(key, ec.EllipticCurvePrivateKey), "the demo CA key is EC"
        self._key = _RecordingECKey(key, seen)

    def private_key(self) -> Any:
        return self._key


class StoreWitness:
    """Looks each TBS up in the store, over its own connection, while the key is signing it:
    only a committed intent row (a certificate still 'signing', a CRL still 'building')
    with exactly those bytes counts."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(driver_url(url, "thread"))
        self.signed: list[tuple[str, str]] = []  # (what the store says it is, SHA-256 of the TBS)

    def __call__(self, tbs: bytes) -> None:
        with self.engine.connect() as conn:
            if conn.execute(
                select(certificates.c.id).where(certificates.c.tbs == tbs, certificates.c.status == "signing")
            ).first():
                kind = "certificate"
            elif conn.execute(select(crls.c.id).where(crls.c.tbs == tbs, crls.c.status == "building")).first():
                kind = "crl"
            else:
                kind = "unrecorded"
        self.signed.append((kind, _digest(tbs)))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_ca_key_signs_only_linted_recorded_tbs(
    ca: CertificateAuthority, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEC-04: over a mixed workload (issuance with the pkilint gate and without it, a
    revocation, CRL generation, the delegated OCSP responder's certificate and OCSP answers),
    every TBS the CA key is asked to sign is, at that moment, stored byte for byte in a
    committed intent row; each one under a lint gate was linted byte for byte; and the key
    signs nothing else (one signature per certificate and per CRL)."""
    witness = StoreWitness(db_url)
    issuer = ca.issuers[ISSUER]
    issuer.signer = RecordingSigner(issuer.signer, witness)

    linted: set[str] = set()  # SHA-256 of every TBS the linters saw
    real_linter = issuer._linter
    assert real_linter is not None

    def linter(der: bytes, profile: str) -> list[str]:
        linted.add(_digest(x509.load_der_x509_certificate(der).tbs_certificate_bytes))
        return real_linter(der, profile)

    issuer._linter = linter
    real_lint_crl = lint_module.lint_crl

    def lint_crl(der: bytes, profile: str = "pkix") -> Any:
        linted.add(_digest(x509.load_der_x509_crl(der).tbs_certlist_bytes))
        return real_lint_crl(der, profile=profile)

    monkeypatch.setattr(lint_module, "lint_crl", lint_crl)

    ocsp = OcspService(ca, ocsp_settings())
    try:
        await install_pointers(ca, crl_settings())
        await ocsp.start()  # the delegated responder's certificate: signed by the CA key, through the issuer
        ocsp.presign_issued = True
        identity = await ocsp.responders.identity(ISSUER)
        assert identity.certificate is not None
        gated_profiles = {"tls-server"}
        issued = []
        for i in range(2):
            for profile in ("tls-server", "tls-client"):
                outcome = await enroll(ca, _request(f"sec04-{profile}-{i}.example.com", profile))
                assert isinstance(outcome, Issued)
                issued.append((profile, outcome))
        await ca.revoke(ISSUER, issued[0][1].certificate.serial_number, "superseded", requester="operator")
        assert await ocsp.poll_feed() > 0  # OCSP responses: signed by the responder key, not the CA key

        published = await CrlService(ca, crl_settings()).generate(ISSUER)
        for record in published:
            assert record.der is not None
            check_crl(record.der, issuer.certificate)
    finally:
        await ocsp.close()
        witness.engine.dispose()

    kinds = [kind for kind, _ in witness.signed]
    assert "unrecorded" not in kinds, kinds
    assert kinds.count("certificate") == len(issued) + 1  # + the responder certificate
    assert kinds.count("crl") == len(published) >= 1
    for profile, outcome in issued:
        tbs = _digest(outcome.certificate.tbs_certificate_bytes)
        assert ("certificate", tbs) in witness.signed
        assert (tbs in linted) == (profile in gated_profiles)
    assert _digest(identity.certificate.tbs_certificate_bytes) in linted  # the responder profile lints with pkilint
    for record in published:
        assert record.der is not None
        tbs = _digest(x509.load_der_x509_crl(record.der).tbs_certlist_bytes)
        assert ("crl", tbs) in witness.signed
        assert tbs in linted, "the signed CRL TBS is not the one linted"
