"""GetCert and GetCRL (RFC 8894 §3.3.4, §3.3.5): look-ups by IssuerAndSerialNumber (SCEP-18).

Both name a certificate by its issuer's name and its serial number. GetCert answers with that
certificate, GetCRL with the current complete CRL of its issuer from the CRL service. An issuer
that is not one of ours or a serial we never issued is badCertId.
"""

from __future__ import annotations

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from ca.cms.scep import FailInfo
from ca.interface import CoreApi
from ca.records import CertificateRecord
from ca.revocation.crl import COMPLETE, CrlService
from ca.revocation.pointers import FULL
from protocols.scep.errors import ScepFailure, bad_request


def _issuer_and_serial(content: bytes) -> tuple[asn1_x509.Name, int]:
    try:
        parsed = cms.IssuerAndSerialNumber.load(content, strict=True)
        return parsed["issuer"], int(parsed["serial_number"].native)
    except Exception:  # asn1crypto's exception types are not a contract
        raise bad_request("the message content is not an IssuerAndSerialNumber") from None


def _issuers(core: CoreApi, name: asn1_x509.Name) -> list[str]:
    """Our issuers of that name (RFC 5280 name matching, as asn1crypto compares Names): after a
    rollover that kept the subject, more than one generation answers to it."""
    found = [i for i in core.issuer_names if asn1_x509.Name.load(core.chain(i)[0].subject.public_bytes()) == name]
    if not found:
        raise ScepFailure(FailInfo.BAD_CERT_ID, "the issuer is not a CA of this server")
    return found


async def _record(core: CoreApi, name: asn1_x509.Name, serial: int) -> CertificateRecord | None:
    for issuer in _issuers(core, name):
        record = await core.certificate_by_serial(issuer, serial)
        if record is not None:
            return record
    return None


async def get_cert(core: CoreApi, content: bytes) -> tuple[x509.Certificate]:
    name, serial = _issuer_and_serial(content)
    record = await _record(core, name, serial)
    if record is None or record.der is None:
        raise ScepFailure(FailInfo.BAD_CERT_ID, "no certificate with this issuer and serial number")
    return (x509.load_der_x509_certificate(record.der),)


async def get_crl(core: CoreApi, crls: CrlService | None, content: bytes) -> x509.CertificateRevocationList:
    name, serial = _issuer_and_serial(content)
    issued = await _record(core, name, serial)  # the generation that issued the serial, if any
    issuer = issued.issuer if issued is not None else _issuers(core, name)[-1]
    if crls is None:
        raise bad_request("this server publishes no CRLs")
    record = await crls.fetch(issuer, FULL, COMPLETE)
    if record is None or record.der is None:
        raise bad_request("no CRL has been published for this issuer yet")
    return x509.load_der_x509_crl(record.der)
