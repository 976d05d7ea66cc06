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
from ca.revocation.crl import COMPLETE, CrlService
from ca.revocation.pointers import FULL
from protocols.scep.errors import ScepFailure, bad_request


def _issuer_and_serial(content: bytes) -> tuple[asn1_x509.Name, int]:
    try:
        parsed = cms.IssuerAndSerialNumber.load(content, strict=True)
        return parsed["issuer"], int(parsed["serial_number"].native)
    except Exception:  # asn1crypto's exception types are not a contract
        raise bad_request("the message content is not an IssuerAndSerialNumber") from None


def _issuer(core: CoreApi, name: asn1_x509.Name) -> str:
    """Our issuer of that name (RFC 5280 name matching, as asn1crypto compares Names)."""
    for issuer in core.issuer_names:
        if asn1_x509.Name.load(core.chain(issuer)[0].subject.public_bytes()) == name:
            return issuer
    raise ScepFailure(FailInfo.BAD_CERT_ID, "the issuer is not a CA of this server")


async def get_cert(core: CoreApi, content: bytes) -> tuple[x509.Certificate]:
    name, serial = _issuer_and_serial(content)
    record = await core.certificate_by_serial(_issuer(core, name), serial)
    if record is None or record.der is None:
        raise ScepFailure(FailInfo.BAD_CERT_ID, "no certificate with this issuer and serial number")
    return (x509.load_der_x509_certificate(record.der),)


async def get_crl(core: CoreApi, crls: CrlService | None, content: bytes) -> x509.CertificateRevocationList:
    name, _ = _issuer_and_serial(content)
    issuer = _issuer(core, name)
    if crls is None:
        raise bad_request("this server publishes no CRLs")
    record = await crls.fetch(issuer, FULL, COMPLETE)
    if record is None or record.der is None:
        raise bad_request("no CRL has been published for this issuer yet")
    return x509.load_der_x509_crl(record.der)
