"""CRMF (RFC 4211) CertReqMsg → EnrollmentRequest, with proof-of-possession checked: CMP's ca/csr.py.

CMP ir/cr/kur bodies carry CertReqMessages instead of PKCS#10. This module decodes
them (pyasn1-alt-modules), checks that the requester holds the private key, and
hands the core the same neutral `EnrollmentRequest` every protocol produces.

Name and Extensions are read by cryptography's own parsers (the ones ca/csr.py uses),
which have no public loader for a bare Name or Extensions: `_template_fields` wraps the
template's subject, key and extensions in an unsigned CertificationRequest shell and
reads them back from it. The shell is never verified nor kept.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtensionOID
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1_alt_modules import rfc4211

from ca.csr import san_identifiers
from ca.der import first_element, tlv
from ca.enrollment import EnrollmentKind, EnrollmentRequest, Identifier, InventoryFields, Requester
from ca.errors import CAError, FailureReason
from ca.sigalg import verify_signature

MAX_CRMF_BYTES = 64 * 1024
MAX_MESSAGES = 8
MAX_EXTENSIONS = 32
MAX_CONTROLS = 16
_EXTENSION_REQUEST = bytes.fromhex("06092a864886f70d01090e")  # OID 1.2.840.113549.1.9.14
_POP = FailureReason.BAD_SIGNATURE  # every POP refusal: CMP maps it to badPOP
_SHELL_TAIL = bytes.fromhex("300d06092a864886f70d01010b05000301" + "00")  # sha256WithRSA, empty BIT STRING


class PopMethod(enum.Enum):
    SIGNATURE = "signature"
    RA_VERIFIED = "ra-verified"


@dataclass(frozen=True)
class CrmfRequest:
    """One translated CertReqMsg: the CMP reply must echo ``cert_req_id``.

    ``controls`` maps regCtrl OIDs (oldCertID for kur, regToken, authenticator...) to
    the DER of their values, for the CMP layer to act on; nothing here interprets them.
    """

    cert_req_id: int
    request: EnrollmentRequest
    pop: PopMethod
    controls: Mapping[str, bytes]


@contextmanager
def _malformed(what: str) -> Iterator[None]:
    try:
        yield
    except CAError:
        raise
    except Exception as exc:  # pyasn1 and cryptography parsers: their exception types are not a contract
        raise CAError(f"{what} is malformed ({type(exc).__name__})", FailureReason.MALFORMED) from None


def _content(der: bytes) -> bytes:
    """The contents of one DER TLV (an EXPLICIT tag's inner value)."""
    first = der[1]
    start = 2 if first < 0x80 else 2 + (first & 0x7F)
    return der[start:]


def decode_cert_req_messages(der: bytes, *, max_bytes: int = MAX_CRMF_BYTES) -> tuple[rfc4211.CertReqMsg, ...]:
    """CertReqMessages from DER, bounded in size and count."""
    if len(der) > max_bytes:
        raise CAError(f"CertReqMessages is {len(der)} bytes, over the {max_bytes}-byte limit", FailureReason.MALFORMED)
    with _malformed("CertReqMessages"):
        messages, rest = der_decoder.decode(bytes(der), asn1Spec=rfc4211.CertReqMessages())
        if rest:
            raise CAError("CertReqMessages has trailing bytes", FailureReason.MALFORMED)
        if not 0 < len(messages) <= MAX_MESSAGES:
            raise CAError(f"CertReqMessages must hold 1 to {MAX_MESSAGES} requests", FailureReason.MALFORMED)
        return tuple(messages)


def _decode_one(der: bytes) -> rfc4211.CertReqMsg:
    if len(der) > MAX_CRMF_BYTES:
        raise CAError(f"CertReqMsg is over the {MAX_CRMF_BYTES}-byte limit", FailureReason.MALFORMED)
    msg, rest = der_decoder.decode(bytes(der), asn1Spec=rfc4211.CertReqMsg())
    if rest:
        raise CAError("CertReqMsg has trailing bytes", FailureReason.MALFORMED)
    return msg


def _public_key(template: rfc4211.CertTemplate) -> tuple[bytes, CertificatePublicKeyTypes]:
    if not template["publicKey"].isValue:
        raise CAError("certTemplate has no publicKey (central key generation is not offered)", FailureReason.MALFORMED)
    spki = b"\x30" + der_encoder.encode(template["publicKey"])[1:]  # [6] IMPLICIT → SEQUENCE
    try:
        key = serialization.load_der_public_key(spki)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CAError(f"certTemplate publicKey is not usable: {exc}", FailureReason.BAD_PUBLIC_KEY) from None
    if not isinstance(key, typing.get_args(CertificatePublicKeyTypes)):
        raise CAError(f"a {type(key).__name__} cannot be certified here", FailureReason.BAD_PUBLIC_KEY)
    return spki, key


def _template_fields(
    template: rfc4211.CertTemplate, spki: bytes
) -> tuple[x509.Name, tuple[x509.Extension[x509.ExtensionType], ...]]:
    """Subject and extensions, read through an unsigned CertificationRequest shell (see module doc)."""
    name = _content(der_encoder.encode(template["subject"])) if template["subject"].isValue else b"\x30\x00"
    attributes = b""
    if template["extensions"].isValue:
        if len(template["extensions"]) > MAX_EXTENSIONS:
            raise CAError(f"certTemplate has over {MAX_EXTENSIONS} extensions", FailureReason.BAD_CSR)
        extensions = b"\x30" + der_encoder.encode(template["extensions"])[1:]  # [9] IMPLICIT → SEQUENCE
        attributes = tlv(0x30, _EXTENSION_REQUEST, tlv(0x31, extensions))
    info = tlv(0x30, b"\x02\x01\x00", name, spki, tlv(0xA0, attributes))
    try:
        shell = x509.load_der_x509_csr(tlv(0x30, info, _SHELL_TAIL))
        return shell.subject, tuple(shell.extensions)
    except ValueError as exc:  # includes DuplicateExtension
        raise CAError(f"certTemplate subject or extensions cannot be parsed: {exc}", FailureReason.MALFORMED) from None


def _names(
    extensions: tuple[x509.Extension[x509.ExtensionType], ...],
) -> tuple[tuple[Identifier, ...], tuple[x509.Extension[x509.ExtensionType], ...]]:
    """SAN entries as identifiers; every other extension is passed on for policy to judge."""
    identifiers: tuple[Identifier, ...] = ()
    others = []
    for ext in extensions:
        if ext.oid != ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
            others.append(ext)
            continue
        assert isinstance(ext.value, x509.SubjectAlternativeName)
        identifiers = san_identifiers(list(ext.value), "certTemplate")
    return identifiers, tuple(others)


def _validity(template: rfc4211.CertTemplate) -> tuple[dt.datetime | None, dt.datetime | None]:
    if not template["validity"].isValue:
        return None, None
    out: list[dt.datetime | None] = []
    for field in ("notBefore", "notAfter"):
        time = template["validity"][field]
        if not time.isValue:
            out.append(None)
            continue
        when = time.getComponent().asDateTime
        if when.tzinfo is None:
            raise CAError(f"certTemplate {field} has no time zone", FailureReason.MALFORMED)
        out.append(when.astimezone(dt.UTC))
    not_before, not_after = out
    if not_before is not None and not_after is not None and not_before >= not_after:
        raise CAError("certTemplate validity ends before it starts", FailureReason.BAD_TIME)
    return not_before, not_after


def _check_template(template: rfc4211.CertTemplate) -> None:
    """RFC 4211 §5: version is v3 if given; the CA chooses serial, algorithm and unique ids."""
    if template["version"].isValue and int(template["version"]) != 2:
        raise CAError("certTemplate version must be v3 when present", FailureReason.MALFORMED)
    for field in ("serialNumber", "signingAlg", "issuerUID", "subjectUID"):
        if template[field].isValue:
            raise CAError(f"certTemplate must not carry {field} (RFC 4211 §5)", FailureReason.MALFORMED)


def _controls(cert_request: rfc4211.CertRequest) -> Mapping[str, bytes]:
    out: dict[str, bytes] = {}
    if not cert_request["controls"].isValue:
        return types.MappingProxyType(out)
    if len(cert_request["controls"]) > MAX_CONTROLS:
        raise CAError(f"certRequest has over {MAX_CONTROLS} controls", FailureReason.MALFORMED)
    for control in cert_request["controls"]:
        oid = str(control["type"])
        if oid in out:
            raise CAError(f"control {oid} appears twice", FailureReason.MALFORMED)
        out[oid] = bytes(der_encoder.encode(control["value"]))
    return types.MappingProxyType(out)


def check_pop(
    msg: rfc4211.CertReqMsg,
    public_key: CertificatePublicKeyTypes,
    *,
    trusted_ra: bool,
    cert_request_der: bytes | None = None,
) -> PopMethod:
    """Proof of possession (RFC 4211 §4): a signature by the requested key over certRequest.

    raVerified counts only when ``trusted_ra`` (the CMP layer authenticated an RA as the
    sender). poposkInput (§4.1 case for templates without subject or key; RFC 9483 says
    to omit it), keyEncipherment and keyAgreement are refused: this CA offers no indirect
    POP. Refusals are BAD_SIGNATURE (CMP badPOP), unknown algorithms BAD_ALGORITHM.
    ``cert_request_der``: certRequest as received, when the caller has it (re-encoding it with
    pyasn1 gives the same DER, at a cost).
    """
    popo = msg["popo"]
    if not popo.isValue:
        raise CAError("the request carries no proof of possession", _POP)
    method = popo.getName()
    if method == "raVerified":
        if not trusted_ra:
            raise CAError(
                "raVerified proof of possession is accepted only from a trusted RA", FailureReason.BAD_SIGNATURE
            )
        return PopMethod.RA_VERIFIED
    if method != "signature":
        raise CAError(f"{method} proof of possession is not offered; sign the request", _POP)
    pop = popo["signature"]
    if pop["poposkInput"].isValue:
        raise CAError("POPOSigningKeyInput is not supported; sign certRequest itself", FailureReason.MALFORMED)
    algorithm = pop["algorithmIdentifier"]
    parameters = algorithm["parameters"]
    verify_signature(
        public_key,  # X25519/X448 keys cannot sign: verify_signature refuses them as BAD_ALGORITHM
        str(algorithm["algorithm"]),
        bytes(der_encoder.encode(parameters)) if parameters.isValue else None,
        pop["signature"].asOctets(),
        cert_request_der or bytes(der_encoder.encode(msg["certReq"])),
    )
    return PopMethod.SIGNATURE


def enrollment_from_cert_req_msg(
    msg: rfc4211.CertReqMsg | bytes,
    *,
    profile_name: str,
    requester: Requester,
    protocol: str = "cmp",
    trusted_ra: bool = False,
    kind: EnrollmentKind = EnrollmentKind.NEW,
    transaction_id: str | None = None,
    inventory: InventoryFields | None = None,
    der: bytes | None = None,
) -> CrmfRequest:
    """The neutral request one CertReqMsg stands for, after its proof of possession verified.

    ``msg`` is DER or an already decoded CertReqMsg (from a CMP PKIBody; ``der`` then gives its
    bytes as received, which spares encoding it again: the caller vouches they are the DER
    ``msg`` was decoded from). Structure
    errors are MALFORMED, template content BAD_CSR / BAD_PUBLIC_KEY / BAD_TIME, POP
    failures BAD_SIGNATURE / BAD_ALGORITHM: only CAError leaves this function.
    """
    with _malformed("CertReqMsg"):
        if isinstance(msg, bytes | bytearray | memoryview):
            der = bytes(msg)
            msg = _decode_one(der)
        raw = der if der is not None else bytes(der_encoder.encode(msg))
        if len(raw) > MAX_CRMF_BYTES:
            raise CAError(f"CertReqMsg is over the {MAX_CRMF_BYTES}-byte limit", FailureReason.MALFORMED)
        cert_request = msg["certReq"]
        cert_req_id = int(cert_request["certReqId"])
        if not -(2**31) <= cert_req_id < 2**31:
            raise CAError("certReqId is out of range", FailureReason.MALFORMED)
        template = cert_request["certTemplate"]
        _check_template(template)
        spki, public_key = _public_key(template)
        pop = check_pop(msg, public_key, trusted_ra=trusted_ra, cert_request_der=first_element(raw))
        subject, extensions = _template_fields(template, spki)
        identifiers, other_extensions = _names(extensions)
        not_before, not_after = _validity(template)
        controls = _controls(cert_request)
    request = EnrollmentRequest(
        protocol=protocol,
        profile_name=profile_name,
        public_key=public_key,
        subject=subject,
        subject_alt_names=identifiers,
        requester=requester,
        kind=kind,
        requested_extensions=other_extensions,
        raw_request=raw,
        transaction_id=transaction_id,
        not_before=not_before,
        not_after=not_after,
        inventory=inventory or InventoryFields(),
    )
    return CrmfRequest(cert_req_id=cert_req_id, request=request, pop=pop, controls=controls)
