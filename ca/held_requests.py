"""How a request held for approval is kept: the protocol-neutral EnrollmentRequest as JSON in
its enrollment_requests row, and read back exactly when an operator approves it, so that the
certificate issued then is the one the policy decided on when the request came in."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_der_public_key

from ca.enrollment import (
    AuthMethod,
    CertificateRef,
    EnrollmentKind,
    EnrollmentRequest,
    Identifier,
    InventoryFields,
    Requester,
)
from ca.records import RequestRecord


def request_to_json(request: EnrollmentRequest) -> dict[str, Any]:
    return {
        "protocol": request.protocol,
        "profile": request.profile_name,
        "subject": base64.b64encode(request.subject.public_bytes()).decode(),
        "sans": [str(i) for i in request.subject_alt_names],
        "requester": {
            "name": request.requester.name,
            "method": request.requester.method.value,
            "proven": None
            if request.requester.proven_identifiers is None
            else sorted(str(i) for i in request.requester.proven_identifiers),
        },
        "kind": request.kind.value,
        "replaces": None
        if request.replaces is None
        else {"issuer": request.replaces.issuer, "serial": format(request.replaces.serial, "x")},
        "not_before": request.not_before.isoformat() if request.not_before else None,
        "not_after": request.not_after.isoformat() if request.not_after else None,
        "inventory": vars(request.inventory),
        "transaction_id": request.transaction_id,
    }


def request_from_record(record: RequestRecord) -> EnrollmentRequest:
    data = record.request
    req = data["requester"]
    proven = None if req["proven"] is None else frozenset(Identifier.parse(s) for s in req["proven"])
    rep = data["replaces"]
    return EnrollmentRequest(
        protocol=data["protocol"],
        profile_name=data["profile"],
        public_key=load_der_public_key(record.public_key),  # type: ignore[arg-type]
        subject=x509.Name.from_rfc4514_string("")
        if not data["subject"]
        else _name_from_der(base64.b64decode(data["subject"])),
        subject_alt_names=tuple(Identifier.parse(s) for s in data["sans"]),
        requester=Requester(req["name"], AuthMethod(req["method"]), proven),
        kind=EnrollmentKind(data["kind"]),
        raw_request=record.raw_request,
        transaction_id=data["transaction_id"],
        replaces=None if rep is None else CertificateRef(rep["issuer"], int(rep["serial"], 16)),
        not_before=dt.datetime.fromisoformat(data["not_before"]) if data["not_before"] else None,
        not_after=dt.datetime.fromisoformat(data["not_after"]) if data["not_after"] else None,
        inventory=InventoryFields(**data["inventory"]),
    )


def _name_from_der(der: bytes) -> x509.Name:
    """cryptography has no Name loader; wrap the Name in a throwaway CSR-free path via asn1crypto."""
    from asn1crypto import x509 as asn1_x509

    parsed = asn1_x509.Name.load(der)
    attrs = []
    for rdn in parsed.chosen:
        for atv in rdn:
            oid = x509.ObjectIdentifier(atv["type"].dotted)
            attrs.append(x509.NameAttribute(oid, str(atv["value"].native)))
    return x509.Name(attrs)
