"""Recovery of certificate intents a crash left in 'signing' (ST-17), on SQLite and PostgreSQL.

A process "dies" here by stopping where a killed one would: after `Issuer.prepare` (the intent
row and its audit event are committed, nothing signed yet, ST-01 F2) or after a result write
the store refused (signed, not recorded: F3). tests/integration/test_crash_recovery.py kills
real processes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, EnrollmentRequest, Issued, Requester
from ca.errors import CAError
from ca.issuer import Intent, IssuanceToken
from ca.recovery import RECOVERY_ACTOR, Settled, matching_certificate, settle_stale_intents, store_unrecorded
from ca.service import CertificateAuthority
from ca.store.repositories import CertificateFilter
from ca.store.tables import audit_log
from tests.helpers import enroll, make_csr, refuse_issued

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)
ISSUER = "issuing-ca"
NOW = dt.timedelta(0)  # a grace of nothing: every intent already written counts as stale
HOUR = dt.timedelta(hours=1)


def _request(name: str) -> EnrollmentRequest:
    csr, _ = make_csr([name])
    return enrollment_from_csr(csr, protocol="cli", profile_name="tls-server", requester=OPERATOR)


async def _intent_only(ca: CertificateAuthority, name: str) -> IssuanceToken:
    """The intent of an issuance whose process died before the key signed (ST-01 F2)."""
    template = (await ca.decide(_request(name))).template
    return await ca.issuers[ISSUER].prepare(template, Intent(protocol="cli", requester="test-operator"))


async def _audit(ca: CertificateAuthority, serial: int) -> list[tuple[str, str]]:
    target = f"{ISSUER}/{serial:x}"

    def q(conn: Any) -> list[tuple[str, str]]:
        rows = conn.execute(
            select(audit_log.c.action, audit_log.c.actor).where(audit_log.c.target == target).order_by(audit_log.c.seq)
        )
        return [(r.action, r.actor) for r in rows]

    return await ca.db.read(q)


async def test_intent_without_result_is_revoked_once_past_the_grace(
    ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    """ST-17: an intent whose process died is left alone while it is younger than the grace (an
    issuance in flight), then revoked with reason unspecified, audited by tetra:recovery, with
    one WARNING line on tetra.recovery; a second run settles nothing. If the process was only
    stalled and its result arrives after all, the row stays revoked: status never goes back to good."""
    token = await _intent_only(ca, "lost.example.com")
    assert await settle_stale_intents(ca, HOUR) == []
    with caplog.at_level(logging.WARNING, logger="tetra.recovery"):
        settled = await settle_stale_intents(ca, NOW)
    assert settled == [Settled(ISSUER, token.serial, "revoked")]
    record = await ca.certificates.get(token.row_id)
    assert record is not None and record.status == "revoked" and record.der is None
    assert record.revocation_reason == "unspecified" and record.revoked_at is not None
    assert await _audit(ca, token.serial) == [
        ("certificate.intent", "test-operator"),
        ("certificate.revoked", RECOVERY_ACTOR),
    ]
    [line] = [r for r in caplog.records if r.name == "tetra.recovery"]
    assert line.levelno == logging.WARNING
    assert f"{token.serial:x}" in line.getMessage() and "revoked" in line.getMessage()

    assert await settle_stale_intents(ca, NOW) == []
    await ca.issuers[ISSUER].sign(token)  # the "dead" process was only stalled
    late = await ca.certificates.get(token.row_id)
    assert late is not None and late.status == "revoked"
    assert (await ca.audit.verify()).ok


async def test_certificate_kept_after_a_refused_result_write_is_stored(ca: CertificateAuthority) -> None:
    """ST-17 / ST-07: the key signed but the store refused the result; the process kept the
    certificate. Once the store takes the write, recovery stores it (whatever its age: every
    process does this for its own), audited by tetra:recovery; nothing is revoked."""
    issuer = ca.issuers[ISSUER]
    async with refuse_issued(ca):
        with pytest.raises(CAError):
            await enroll(ca, _request("kept.example.com"))
    [row] = await ca.certificates.list(CertificateFilter(status="signing"))
    assert len(issuer.unrecorded) == 1

    assert await store_unrecorded(ca) == [Settled(ISSUER, row.serial, "issued")]
    record = await ca.certificates.get(row.id)
    assert record is not None and record.status == "issued" and record.der is not None
    certificate = x509.load_der_x509_certificate(record.der)
    assert certificate.tbs_certificate_bytes == row.tbs and certificate.serial_number == row.serial
    assert (await _audit(ca, row.serial))[-1] == ("certificate.issued", RECOVERY_ACTOR)
    assert len(issuer.unrecorded) == 0
    assert await settle_stale_intents(ca, NOW) == []
    assert (await ca.audit.verify()).ok


async def test_kept_certificate_that_is_not_the_intents_is_never_stored(ca: CertificateAuthority) -> None:
    """ST-17 / CORE-04 / CORE-11: only a certificate with the intent's exact TBS, signed by the
    issuer's key, settles an intent as issued. Another certificate of the same issuer, or the
    intent's own lint certificate (same TBS, throwaway signature), does not: the serial is revoked."""
    issuer = ca.issuers[ISSUER]
    token = await _intent_only(ca, "mismatch.example.com")
    other = await enroll(ca, _request("other.example.com"))
    assert isinstance(other, Issued)
    record = await ca.certificates.get(token.row_id)
    assert record is not None
    lint_der = token.lint_certificate.public_bytes(Encoding.DER)
    other_der = other.certificate.public_bytes(Encoding.DER)
    assert matching_certificate(issuer, record, lint_der) is None
    assert matching_certificate(issuer, record, other_der) is None

    issuer.unrecorded.keep(token.row_id, other_der)
    assert await settle_stale_intents(ca, NOW) == [Settled(ISSUER, token.serial, "revoked")]
    untouched = await ca.certificates.get(other.record_id)
    assert untouched is not None and untouched.status == "issued"
    assert len(issuer.unrecorded) == 0


async def test_an_operator_revocation_first_is_left_as_it_is(ca: CertificateAuthority) -> None:
    """ST-17: a row an operator revoked while it was 'signing' is not touched again (the
    settlement is a compare-and-set on 'signing'): its reason and audit trail stay the operator's."""
    token = await _intent_only(ca, "operator.example.com")
    await ca.revoke(ISSUER, token.serial, "keyCompromise", requester="operator")
    assert await settle_stale_intents(ca, NOW) == []
    record = await ca.certificates.get(token.row_id)
    assert record is not None and record.revocation_reason == "keyCompromise"
    assert [actor for _, actor in await _audit(ca, token.serial)] == ["test-operator", "operator"]
