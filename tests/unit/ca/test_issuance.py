"""The protocol-neutral issuance path on both stores: policy -> intent -> sign -> result -> audit."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, EnrollmentRequest, Identifier, Issued, Pending, Requester
from ca.errors import CAError, FailureReason
from ca.service import CertificateAuthority
from ca.store.repositories import CertificateFilter
from tests.helpers import enroll, make_csr
from tests.pkilint_check import assert_certificate_lints_clean

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)


def _request(
    names: list[str],
    profile: str = "tls-server",
    key_spec: str = "ec-p256",
    cn: str | None = None,
    requester: Requester = OPERATOR,
    protocol: str = "cli",
) -> EnrollmentRequest:
    csr, _ = make_csr(names, key_spec=key_spec, cn=cn)
    return enrollment_from_csr(csr, protocol=protocol, profile_name=profile, requester=requester)


async def test_issue_tls_server_lints_clean_and_is_recorded(ca: CertificateAuthority) -> None:
    outcome = await enroll(ca, _request(["www.example.com", "example.com"], cn="www.example.com"))
    assert isinstance(outcome, Issued)
    cert = outcome.certificate
    der = cert.public_bytes(Encoding.DER)
    cert.verify_directly_issued_by(outcome.chain[0])
    assert_certificate_lints_clean(der, "pkix")
    assert_certificate_lints_clean(der, "cabf-serverauth")
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["www.example.com", "example.com"]
    for oid in (
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
    ):
        cert.extensions.get_extension_for_oid(oid)
    record = await ca.certificates.by_serial(outcome.issuer, cert.serial_number)
    assert record is not None and record.status == "issued" and record.der == der
    assert record.tbs == cert.tbs_certificate_bytes  # CORE-04: stored intent is what was signed
    assert record.sans == ("dns:www.example.com", "dns:example.com")
    report = await ca.audit.verify()
    assert report.ok, report.problems


@pytest.mark.parametrize("key_spec", ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"])
async def test_tls_server_each_key_type_lints_clean(ca: CertificateAuthority, key_spec: str) -> None:
    outcome = await enroll(ca, _request(["api.example.com"], key_spec=key_spec))
    assert isinstance(outcome, Issued)
    assert_certificate_lints_clean(outcome.certificate.public_bytes(Encoding.DER), "cabf-serverauth")


@pytest.mark.parametrize(
    ("profile", "names", "cn", "key_spec"),
    [
        ("tls-client", ["email:alice@example.com"], "alice", "ed25519"),
        ("tls-client", [], "service-a", "ec-p256"),
        ("device", ["dns:router1.example.com", "ip:192.0.2.10"], "router1", "rsa-2048"),
        ("email", ["email:bob@example.com"], "Bob", "ec-p384"),
        ("code-signing", [], "Release Signing", "rsa-3072"),
    ],
)
async def test_every_example_profile_lints_clean(
    ca: CertificateAuthority, profile: str, names: list[str], cn: str, key_spec: str
) -> None:
    outcome = await enroll(ca, _request(names, profile=profile, cn=cn, key_spec=key_spec))
    assert isinstance(outcome, Issued)  # operator requests skip manual approval
    assert_certificate_lints_clean(outcome.certificate.public_bytes(Encoding.DER), "pkix")


async def test_serials_are_128_bit_random_positive_and_unique(ca: CertificateAuthority) -> None:
    """CORE-01 (small sample here; the property is the generator's, checked at scale in test_serials)."""
    serials = []
    for _ in range(20):
        outcome = await enroll(ca, _request(["s.example.com"]))
        assert isinstance(outcome, Issued)
        serials.append(outcome.certificate.serial_number)
    assert len(set(serials)) == 20
    assert all(0 < s < 2**128 for s in serials)
    assert any(s.bit_length() > 120 for s in serials)


async def test_manual_approval_pending_then_approved(ca: CertificateAuthority) -> None:
    requester = Requester("est-user", AuthMethod.PASSWORD)
    request = _request(
        [], profile="code-signing", cn="Build Bot", key_spec="ec-p256", requester=requester, protocol="est"
    )
    pending = await enroll(ca, request)
    assert isinstance(pending, Pending)
    assert await ca.certificates.list(CertificateFilter(profile="code-signing")) == []
    again = await enroll(ca, request.__class__(**{**request.__dict__, "transaction_id": None}))
    assert isinstance(again, Pending)
    issued = await ca.approve(pending.request_id, operator="alice")
    assert isinstance(await ca.poll(pending.request_id), Issued)
    assert issued.certificate.subject.rfc4514_string() == "CN=Build Bot"
    with pytest.raises(CAError):
        await ca.approve(pending.request_id, operator="alice")  # decided once only


async def test_rejected_request_stays_unissued(ca: CertificateAuthority) -> None:
    request = _request(
        [], profile="code-signing", cn="Evil", requester=Requester("u", AuthMethod.PASSWORD), protocol="est"
    )
    pending = await enroll(ca, request)
    assert isinstance(pending, Pending)
    await ca.reject(pending.request_id, operator="alice", note="not ours")
    with pytest.raises(CAError) as err:
        await ca.poll(pending.request_id)
    assert "rejected" in err.value.detail
    assert await ca.certificates.list(CertificateFilter(profile="code-signing")) == []


async def test_revoke_records_reason_and_audits(ca: CertificateAuthority) -> None:
    outcome = await enroll(ca, _request(["r.example.com"]))
    assert isinstance(outcome, Issued)
    revoked = await ca.revoke(outcome.issuer, outcome.certificate.serial_number, "keyCompromise", requester="t")
    assert revoked.status == "revoked" and revoked.revocation_reason == "keyCompromise"
    assert revoked.revoked_at is not None
    with pytest.raises(CAError) as err:
        await ca.revoke(outcome.issuer, outcome.certificate.serial_number, "superseded", requester="t")
    assert err.value.reason is FailureReason.ALREADY_REVOKED
    with pytest.raises(CAError) as err:
        await ca.revoke(outcome.issuer, 12345, "superseded", requester="t")
    assert err.value.reason is FailureReason.UNKNOWN_CERTIFICATE
    with pytest.raises(CAError):
        await ca.revoke(outcome.issuer, outcome.certificate.serial_number, 6, requester="t")  # certificateHold
    assert (await ca.audit.verify()).ok


async def test_renewal_authenticated_by_certificate_keeps_lineage(ca: CertificateAuthority) -> None:
    first = await enroll(ca, _request(["dev.example.com"], profile="device", cn="dev"))
    assert isinstance(first, Issued)
    record = await ca.authenticate_certificate(first.certificate)
    requester = ca.renewal_requester(record)
    from dataclasses import replace

    from ca.enrollment import CertificateRef, EnrollmentKind

    renewal = replace(
        _request(["dev.example.com"], profile="device", cn="dev", requester=requester, protocol="est"),
        kind=EnrollmentKind.RENEW,
        replaces=CertificateRef(first.issuer, first.certificate.serial_number),
    )
    second = await enroll(ca, renewal)
    assert isinstance(second, Issued)
    new_record = await ca.certificates.get(second.record_id)
    assert new_record is not None and new_record.replaces_id == record.id
    # The renewing certificate proves only its own names (SEC-01).
    wider = replace(
        renewal,
        subject_alt_names=(
            *renewal.subject_alt_names,
            Identifier("dns", "x.example.com"),
        ),
    )
    with pytest.raises(CAError) as err:
        await enroll(ca, wider)
    assert err.value.reason is FailureReason.UNAUTHORIZED
    await ca.revoke(first.issuer, first.certificate.serial_number, "superseded", requester="t")
    with pytest.raises(CAError):
        await ca.authenticate_certificate(first.certificate)


async def test_server_side_key_generation(ca: CertificateAuthority) -> None:
    request = _request(["iot1.example.com"], profile="device", cn="iot1")
    issued = await ca.enroll_with_server_key(await ca.decide(request), "ec-p256")
    assert issued.private_key is not None
    assert issued.certificate.public_key() == issued.private_key.public_key()


async def test_inventory_fields_and_json_listing(ca: CertificateAuthority) -> None:
    from dataclasses import replace

    from ca.enrollment import InventoryFields

    request = replace(_request(["inv.example.com"]), inventory=InventoryFields("alice", "web", "shop", "eu-west"))
    outcome = await enroll(ca, request)
    assert isinstance(outcome, Issued)
    record = await ca.certificates.get(outcome.record_id)
    assert record is not None
    assert (record.owner, record.team, record.application, record.location) == ("alice", "web", "shop", "eu-west")
    assert json.loads(json.dumps(list(record.sans))) == ["dns:inv.example.com"]


async def test_result_transaction_write_commits_with_the_issued_row(ca: CertificateAuthority) -> None:
    """ST-01 F4 / ACME order state: a protocol's "issued" write (enroll's on_issued) runs in the
    certificate's result transaction, with its row id, once; enrollments without it and pending
    approvals skip it."""
    from sqlalchemy import update

    from ca.store.db import Tx
    from ca.store.tables import certificates

    seen: list[int] = []

    def mark(tx: Tx, row_id: int) -> None:
        seen.append(row_id)
        tx.conn.execute(update(certificates).where(certificates.c.id == row_id).values(owner="marked in result tx"))

    outcome = await enroll(ca, _request(["hooked.example.com"]), on_issued=mark)
    requester = Requester("est-user", AuthMethod.PASSWORD)
    pending_request = _request([], profile="code-signing", cn="Bot", requester=requester, protocol="est")
    pending = await enroll(ca, pending_request, on_issued=mark)
    assert isinstance(outcome, Issued) and isinstance(pending, Pending)
    assert seen == [outcome.record_id]
    record = await ca.certificates.get(outcome.record_id)
    assert record is not None and record.status == "issued" and record.owner == "marked in result tx"
    later = await enroll(ca, _request(["plain.example.com"]))
    assert isinstance(later, Issued) and seen == [outcome.record_id]
    report = await ca.audit.verify()
    assert report.ok, report.problems
