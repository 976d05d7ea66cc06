"""rr -> rp (RFC 9483 §4.2): revoke one certificate, named by issuer and serial number.

Who may revoke what (CMP-11): a request signed by a certificate of this CA revokes that
certificate only; a request MAC'd with a shared secret revokes certificates of the profile the
secret enrols under. Anything else is notAuthorized. The reason comes from crlEntryDetails'
reasonCode (unspecified when absent); the core refuses reasons a CA must not accept and a
certificate already revoked (certRevoked), and audits the revocation.
"""

from __future__ import annotations

from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1_alt_modules import rfc5280

from ca.interface import CoreApi
from ca.records import CertificateRecord
from protocols.cmp import bodies
from protocols.cmp.der import explicit
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.exchange import Answer, Exchange

REASON_CODE = str(rfc5280.id_ce_cRLReasons)


def _reason(details: object) -> int:
    """crlEntryDetails' reasonCode, 0 (unspecified) when there is none."""
    for extension in details:  # type: ignore[attr-defined]
        if str(extension["extnID"]) == REASON_CODE:
            try:
                value, rest = der_decoder.decode(bytes(extension["extnValue"]), asn1Spec=rfc5280.CRLReason())
            except Exception:  # pyasn1's exception types are not a contract
                raise CmpFailure(FailInfo.badDataFormat, "the reasonCode cannot be decoded") from None
            if rest:
                raise CmpFailure(FailInfo.badDataFormat, "the reasonCode has trailing bytes")
            return int(value)
    return 0


class Revoker:
    def __init__(self, core: CoreApi) -> None:
        self.core = core

    async def revoke(self, ex: Exchange) -> Answer:
        content = ex.message.body.getComponent()
        if len(content) != 1:
            raise CmpFailure(FailInfo.badRequest, "rr must name exactly one certificate (RFC 9483 §4.2)")
        details = content[0]
        template = details["certDetails"]
        if not template["serialNumber"].isValue or not template["issuer"].isValue:
            raise CmpFailure(FailInfo.badCertTemplate, "certDetails must give the issuer and serialNumber")
        record = await self._record(bytes(der_encoder.encode(template["issuer"])), int(template["serialNumber"]))
        self._authorize(ex, record)
        entry = details["crlEntryDetails"]
        reason = _reason(entry) if entry.isValue else 0
        await self.core.revoke(record.issuer, record.serial, reason, requester=ex.sender.requester.name)
        return Answer(bodies.revocation_reply(bodies.PkiStatus.accepted))

    async def _record(self, issuer_der: bytes, serial: int) -> CertificateRecord:
        for name in self.core.issuer_names:
            if explicit(3, self.core.chain(name)[0].subject.public_bytes()) == issuer_der:
                record = await self.core.certificate_by_serial(name, serial)
                if record is not None:
                    return record
        raise CmpFailure(FailInfo.badCertId, "this CA issued no certificate with that issuer and serialNumber")

    @staticmethod
    def _authorize(ex: Exchange, record: CertificateRecord) -> None:
        sender = ex.sender
        if sender.record is not None:
            if (sender.record.issuer, sender.record.serial) == (record.issuer, record.serial):
                return
        elif sender.by_mac and sender.profile is not None and sender.profile == record.profile:
            return
        raise CmpFailure(FailInfo.notAuthorized, "this sender may not revoke that certificate")  # CMP-11
