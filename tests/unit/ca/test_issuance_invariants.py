"""Invariants of the issuing core on both stores: one signature per issuance token (CORE-05),
one profile per in-flight issuance (CORE-14)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from sqlalchemy import select

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, EnrollmentRequest, Issued, Requester
from ca.errors import InternalError, PolicyViolation
from ca.service import CertificateAuthority
from ca.store.repositories import CertificateFilter
from ca.store.tables import audit_log
from tests.helpers import CountingSigner, GatedSigner, make_csr

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
    template = ca.decide(_request("once.example.com"))

    token = await issuer.prepare(template, protocol="cli", requester="test")
    certificate, row_id = await issuer.sign(token)
    with pytest.raises(InternalError, match="already signed once"):
        await issuer.sign(token)
    assert signer.runs == 1
    record = await ca.certificates.get(row_id)
    assert record is not None and record.status == "issued"
    assert record.der == certificate.public_bytes(Encoding.DER)
    assert await _audit_actions(ca, certificate.serial_number) == ["certificate.intent", "certificate.issued"]

    # Two tasks racing with one token: exactly one signs.
    token = await issuer.prepare(template, protocol="cli", requester="test")
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
    task = asyncio.create_task(ca.enroll(_request("revoked-in-flight.example.com")))
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
    before = _traits((await ca.enroll(_request("before.example.com"))).certificate)  # type: ignore[union-attr]
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
        tasks = [asyncio.create_task(ca.enroll(r)) for r in requests]
        while len(waiting) < len(tasks):
            await asyncio.sleep(0.01)
        ca.reload_profiles(_changed(ca))
        issuer._linter = real_linter
        release.set()
    else:
        gated = GatedSigner(issuer.signer)
        issuer.signer = gated
        tasks = [asyncio.create_task(ca.enroll(r)) for r in requests]
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

    after = await ca.enroll(_request("after.example.com"))
    assert isinstance(after, Issued)
    assert _traits(after.certificate) == (
        30,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [
            *before[2],
            EXTRA_POLICY,
        ],
    )
