"""PKCS#10 requests: bounded parsing, signature check, and translation to an EnrollmentRequest.

Every protocol that carries a CSR (ACME finalize, EST, SCEP, CMP p10cr, the
CLI) goes through here, so the limits are the same everywhere.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from ca.enrollment import (
    EnrollmentKind,
    EnrollmentRequest,
    Identifier,
    InventoryFields,
    Requester,
    identifiers_from_general_names,
)
from ca.errors import CAError, FailureReason

MAX_CSR_BYTES = 64 * 1024
MAX_SANS = 100


def parse_csr(data: bytes) -> x509.CertificateSigningRequest:
    """PEM or DER, at most 64 KiB, with a signature that verifies."""
    if len(data) > MAX_CSR_BYTES:
        raise CAError(f"CSR is {len(data)} bytes, over the {MAX_CSR_BYTES}-byte limit", FailureReason.BAD_CSR)
    stripped = data.strip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(stripped)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise CAError(f"not a PKCS#10 CSR in PEM or DER: {exc}", FailureReason.BAD_CSR) from None
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # unsupported signature algorithm in the CSR
        raise CAError(f"CSR signature cannot be checked: {exc}", FailureReason.BAD_ALGORITHM) from None
    if not valid:
        raise CAError("CSR signature does not verify", FailureReason.BAD_SIGNATURE)
    return csr


def csr_identifiers(csr: x509.CertificateSigningRequest) -> tuple[Identifier, ...]:
    """The names a CSR asks for: its SAN extension, bounded in number."""
    try:
        ext = csr.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return ()
    except ValueError as exc:
        raise CAError(f"CSR extensions cannot be parsed: {exc}", FailureReason.BAD_CSR) from None
    return san_identifiers(list(ext.value), "CSR")  # type: ignore[call-overload]


def san_identifiers(names: list[x509.GeneralName], requester: str) -> tuple[Identifier, ...]:
    """A subjectAltName's entries as identifiers, at most MAX_SANS of them: one bound and one
    refusal (BAD_CSR) for every request format (PKCS#10 here, CRMF in ca/crmf.py).
    ``requester`` names the message in the refusal ("CSR", "certTemplate")."""
    if len(names) > MAX_SANS:
        raise CAError(
            f"{requester} asks for {len(names)} subjectAltNames, over the limit of {MAX_SANS}",
            FailureReason.BAD_CSR,
        )
    try:
        return identifiers_from_general_names(names)
    except ValueError as exc:
        raise CAError(str(exc), FailureReason.BAD_CSR) from None


def enrollment_from_csr(
    csr: x509.CertificateSigningRequest,
    *,
    protocol: str,
    profile_name: str,
    requester: Requester,
    kind: EnrollmentKind = EnrollmentKind.NEW,
    transaction_id: str | None = None,
    inventory: InventoryFields | None = None,
) -> EnrollmentRequest:
    """The neutral request a CSR stands for. Extensions are carried, never copied blindly:
    policy decides what the certificate gets."""
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        public_key = csr.public_key()
    except (ValueError, TypeError) as exc:
        raise CAError(f"CSR public key is not usable: {exc}", FailureReason.BAD_PUBLIC_KEY) from None
    return EnrollmentRequest(
        protocol=protocol,
        profile_name=profile_name,
        public_key=public_key,
        subject=csr.subject,
        subject_alt_names=csr_identifiers(csr),
        requester=requester,
        kind=kind,
        requested_extensions=tuple(csr.extensions),
        raw_request=csr.public_bytes(Encoding.DER),
        transaction_id=transaction_id,
        inventory=inventory or InventoryFields(),
    )
