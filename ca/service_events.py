"""The core's activity events (ca/activity.py), one function per event, called by
ca/service.py at the one place each is decided, whichever protocol or command asked: a
certificate issued, an issuance refused, a request held, approved or rejected, a certificate
revoked. Kept here so the service reads as what it does, and the fields of each event are
written down once (docs/logging.md lists them)."""

from __future__ import annotations

import logging

from cryptography import x509

from ca.activity import Event, log_event
from ca.enrollment import EnrollmentRequest
from ca.errors import CAError
from ca.profiles.policy import CertificateTemplate
from ca.records import CertificateRecord, RequestRecord


def _subject(name: x509.Name) -> str:
    return name.rfc4514_string()


def issued(request: EnrollmentRequest, template: CertificateTemplate, certificate: x509.Certificate) -> None:
    log_event(
        Event.ISSUED,
        protocol=request.protocol,
        profile=template.profile.name,
        issuer=template.issuer_name,
        serial=format(certificate.serial_number, "x"),
        subject=_subject(template.subject),
        sans=[str(i) for i in template.subject_alt_names],
        requester=request.requester.name,
    )


def refused(request: EnrollmentRequest, exc: CAError) -> None:
    """An issuance refused (policy, CSR, key) or failed (store, signer): the reason and its detail.
    Our own faults are warnings; a request the policy refuses is routine."""
    log_event(
        Event.REFUSED,
        level=logging.INFO if exc.peer_caused else logging.WARNING,
        protocol=request.protocol,
        profile=request.profile_name,
        subject=_subject(request.subject),
        sans=[str(i) for i in request.subject_alt_names],
        requester=request.requester.name,
        reason=exc.reason.value,
        detail=exc.detail,
    )


def held(request: EnrollmentRequest, template: CertificateTemplate, held_request: int) -> None:
    log_event(
        Event.HELD,
        protocol=request.protocol,
        profile=template.profile.name,
        held_request=held_request,
        subject=_subject(template.subject),
        sans=[str(i) for i in template.subject_alt_names],
        requester=request.requester.name,
    )


def approved(record: RequestRecord, operator: str) -> None:
    log_event(
        Event.APPROVED,
        protocol=record.protocol,
        profile=record.profile,
        held_request=record.id,
        subject=record.subject,
        by=operator,
    )


def rejected(record: RequestRecord, operator: str, note: str) -> None:
    log_event(
        Event.REJECTED,
        protocol=record.protocol,
        profile=record.profile,
        held_request=record.id,
        subject=record.subject,
        by=operator,
        reason=note or None,
    )


def revoked(record: CertificateRecord, requester: str) -> None:
    """``protocol`` is the channel the revocation came by (the request's scope), not the one the
    certificate was issued by."""
    log_event(
        Event.REVOKED,
        profile=record.profile,
        issuer=record.issuer,
        serial=record.serial_hex,
        subject=record.subject,
        reason=record.revocation_reason,
        by=requester,
    )


__all__ = ["approved", "held", "issued", "refused", "rejected", "revoked"]
