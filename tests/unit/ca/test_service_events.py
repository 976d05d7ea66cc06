"""The core's activity events (ca/service_events.py) on the real CA: held, rejected, approved,
issued, refused, revoked and CRL published, each once, with its fields and the request scope."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ca.activity import request_scope
from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Issued, Pending, Requester
from ca.errors import CAError
from ca.revocation.crl import CrlService
from ca.service import CertificateAuthority
from tests.helpers import make_csr
from tests.revocation_support import crl_settings

ISSUER = "issuing-ca"


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[dict[str, Any]]:
    found = [getattr(r, "activity", {}) for r in caplog.records if r.name == "tetra.activity"]
    return [e for e in found if e.get("event") == name]


async def hold(ca: CertificateAuthority, cn: str) -> int:
    csr, _ = make_csr([], cn=cn)
    request = enrollment_from_csr(
        csr, protocol="est", profile_name="code-signing", requester=Requester("est-user", AuthMethod.PASSWORD)
    )
    held = await ca.enroll(await ca.decide(request))
    assert isinstance(held, Pending)
    return held.request_id


async def test_held_rejected_approved_issued_revoked(
    ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    """OPS-13: each decision of the core is one event naming the request, profile, subject or
    serial, who decided and why; the events carry the scope's request id."""
    caplog.set_level(logging.INFO, logger="tetra.activity")
    with request_scope("req-1", protocol="est"):
        first = await hold(ca, "Build Bot")
        second = await hold(ca, "Release Bot")
    [held] = [e for e in events(caplog, "request.held") if e["held_request"] == first]
    assert held["request_id"] == "req-1" and held["profile"] == "code-signing" and held["subject"] == "CN=Build Bot"

    with request_scope("cli-1", protocol="cli"):
        await ca.reject(first, "cli:bob", note="not ours")
        issued = await ca.approve(second, "cli:alice")
    assert isinstance(issued, Issued)
    [rejected] = events(caplog, "request.rejected")
    assert rejected["held_request"] == first and rejected["by"] == "cli:bob" and rejected["reason"] == "not ours"
    assert rejected["protocol"] == "est" and rejected["request_id"] == "cli-1"  # the held request's protocol
    [approved] = events(caplog, "request.approved")
    assert approved["held_request"] == second and approved["by"] == "cli:alice"
    [cert] = events(caplog, "certificate.issued")
    assert cert["serial"] == format(issued.certificate.serial_number, "x") and cert["subject"] == "CN=Release Bot"
    assert cert["profile"] == "code-signing" and cert["protocol"] == "est" and cert["request_id"] == "cli-1"

    with request_scope("api-9", protocol="api"):
        await ca.revoke(ISSUER, issued.certificate.serial_number, "keyCompromise", requester="api:127.0.0.1")
    [revoked] = events(caplog, "certificate.revoked")
    assert revoked["serial"] == cert["serial"] and revoked["reason"] == "keyCompromise"
    assert revoked["by"] == "api:127.0.0.1" and revoked["protocol"] == "api" and revoked["request_id"] == "api-9"


async def test_a_refusal_is_one_event_with_its_reason(
    ca: CertificateAuthority, caplog: pytest.LogCaptureFixture
) -> None:
    """OPS-13: a request the policy refuses is one `issuance.refused` with reason and detail."""
    caplog.set_level(logging.INFO, logger="tetra.activity")
    csr, _ = make_csr(["ip:192.0.2.1"])
    request = enrollment_from_csr(
        csr, protocol="api", profile_name="email", requester=Requester("api:x", AuthMethod.OPERATOR)
    )
    with pytest.raises(CAError):
        await ca.decide(request)
    [refused] = events(caplog, "issuance.refused")
    assert refused["reason"] == "rejected_by_policy" and "SAN type ip not allowed" in refused["detail"]
    assert refused["profile"] == "email" and refused["sans"] == ["ip:192.0.2.1"]
    assert events(caplog, "certificate.issued") == []


async def test_a_published_crl_is_one_event(ca: CertificateAuthority, caplog: pytest.LogCaptureFixture) -> None:
    """OPS-13: a CRL signed and published is one `crl.published` naming issuer, scope and number."""
    caplog.set_level(logging.INFO, logger="tetra.activity")
    [full] = await CrlService(ca, crl_settings()).generate(ISSUER)
    [published] = events(caplog, "crl.published")
    assert (published["issuer"], published["number"], published["entries"]) == (ISSUER, full.number, 0)
    assert published["kind"] == "complete" and published["scope"] == "full"
