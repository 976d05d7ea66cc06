"""PKIBody DER for the replies a CMP server sends (RFC 9810 §5.3, RFC 9483 §4).

Bodies are assembled from DER pieces rather than pyasn1 objects: the pieces are few and
fixed, the certificates and CRLs go in as the bytes cryptography already holds, and a reply
costs no schema walk. The tests decode every body with pyasn1-alt-modules' RFC 9810 schema
and hand whole replies to `openssl cmp -rspin`, which is what keeps these builders honest.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1_alt_modules import rfc9810

from ca.der import oid, tlv
from protocols.cmp.der import explicit, integer, sequence
from protocols.cmp.errors import CmpFailure, FailInfo


class PkiStatus(enum.IntEnum):
    """PKIStatus (RFC 9810 §5.2.3)."""

    accepted = 0
    grantedWithMods = 1
    rejection = 2
    waiting = 3
    revocationWarning = 4
    revocationNotification = 5
    keyUpdateWarning = 6


# PKIBody CHOICE tags (RFC 9810 §5.1.2), for the bodies a server sends
IP, CP, KUP, RP, PKICONF, GENP, ERROR, POLLREP = 1, 3, 8, 12, 19, 22, 23, 26
CERT_REP_TAGS = {"ir": IP, "cr": CP, "p10cr": CP, "kur": KUP}  # request body -> its reply's tag
P10CR_CERT_REQ_ID = -1  # a p10cr has no certReqId; its cp and certConf say -1 (as OpenSSL 3.0's mock does)

ID_IT_CA_CERTS = str(rfc9810.id_it_caCerts)
ID_IT_ROOT_CA_UPDATE = str(rfc9810.id_it_rootCaKeyUpdate)
ID_IT_ROOT_CA_CERT = str(rfc9810.id_it_rootCaCert)  # a genm's question: is there a successor to this root?
ID_IT_CERT_REQ_TEMPLATE = str(rfc9810.id_it_certReqTemplate)
ID_IT_CRL_STATUS_LIST = str(rfc9810.id_it_crlStatusList)
ID_IT_CRLS = str(rfc9810.id_it_crls)
ID_IT_CURRENT_CRL = str(rfc9810.id_it_currentCRL)


def _der(item: x509.Certificate | x509.CertificateRevocationList) -> bytes:
    return item.public_bytes(Encoding.DER)


def free_text(*lines: str) -> bytes:
    """PKIFreeText: SEQUENCE OF UTF8String."""
    return sequence(*(tlv(0x0C, line.encode()) for line in lines))


def fail_info_bits(bit: FailInfo) -> bytes:
    """PKIFailureInfo with one bit set, in DER's shortest form (trailing zero bits dropped)."""
    octets = bytearray(bit // 8 + 1)
    octets[bit // 8] = 0x80 >> (bit % 8)
    return tlv(0x03, bytes([7 - bit % 8]), bytes(octets))


def status_info(status: PkiStatus, text: str | None = None, fail_info: FailInfo | None = None) -> bytes:
    """PKIStatusInfo."""
    parts = [integer(status)]
    if text:
        parts.append(free_text(text))
    if fail_info is not None:
        parts.append(fail_info_bits(fail_info))
    return sequence(*parts)


def _body(tag: int, content: bytes) -> bytes:
    return explicit(tag, content)


def cert_rep(
    tag: int, cert_req_id: int, certificate: x509.Certificate | None, *, ca_pubs: Sequence[x509.Certificate] = ()
) -> bytes:
    """ip/cp/kup (``tag``) with one CertResponse: the certificate (status accepted), or, when
    ``certificate`` is None, status waiting for a delayed delivery the client polls for."""
    if certificate is None:
        response = sequence(integer(cert_req_id), status_info(PkiStatus.waiting))
    else:
        key_pair = sequence(explicit(0, _der(certificate)))  # CertifiedKeyPair { certificate [0] }
        response = sequence(integer(cert_req_id), status_info(PkiStatus.accepted), key_pair)
    pubs = explicit(1, sequence(*(_der(cert) for cert in ca_pubs))) if ca_pubs else b""
    return _body(tag, sequence(pubs, sequence(response)))


def cert_rep_rejection(tag: int, cert_req_id: int, failure: CmpFailure) -> bytes:
    """ip/cp/kup refusing one request (RFC 9483 §4.1.1 lets a server answer this or error)."""
    status = status_info(PkiStatus.rejection, failure.public_text(), failure.fail_info)
    return _body(tag, sequence(sequence(sequence(integer(cert_req_id), status))))


def revocation_reply(status: PkiStatus, failure: CmpFailure | None = None) -> bytes:
    """rp for one RevDetails: accepted, or rejection with the failInfo (RFC 9483 §4.2)."""
    if failure is None:
        info = status_info(status)
    else:
        info = status_info(status, failure.public_text(), failure.fail_info)
    return _body(RP, sequence(sequence(info)))


def pki_conf() -> bytes:
    """pkiconf: NULL."""
    return _body(PKICONF, b"\x05\x00")


def poll_rep(cert_req_id: int, check_after: int, reason: str | None = None) -> bytes:
    """pollRep: ask again after ``check_after`` seconds."""
    entry = [integer(cert_req_id), integer(check_after)]
    if reason:
        entry.append(free_text(reason))
    return _body(POLLREP, sequence(sequence(*entry)))


def error(failure: CmpFailure, error_code: int | None = None) -> bytes:
    """error: PKIStatusInfo rejection with the failInfo bit and the public text."""
    parts = [status_info(PkiStatus.rejection, failure.public_text(), failure.fail_info)]
    if error_code is not None:
        parts.append(integer(error_code))
    return _body(ERROR, sequence(*parts))


def itav(info_type: str, value: bytes | None = None) -> bytes:
    """InfoTypeAndValue; ``value`` is DER, None for an absent infoValue."""
    return sequence(oid(info_type), value or b"")


def ca_certs(certificates: Sequence[x509.Certificate]) -> bytes:
    """The caCerts ITAV (RFC 9483 §4.3.1); an empty list answers with no value."""
    return itav(ID_IT_CA_CERTS, sequence(*(_der(c) for c in certificates)) if certificates else None)


def root_ca_update(
    new_with_new: x509.Certificate | None,
    new_with_old: x509.Certificate | None = None,
    old_with_new: x509.Certificate | None = None,
) -> bytes:
    """The rootCaKeyUpdate ITAV (RFC 9483 §4.3.2): no value when there is no update."""
    if new_with_new is None:
        return itav(ID_IT_ROOT_CA_UPDATE)
    parts = [_der(new_with_new)]
    if new_with_old is not None:
        parts.append(explicit(0, _der(new_with_old)))
    if old_with_new is not None:
        parts.append(explicit(1, _der(old_with_new)))
    return itav(ID_IT_ROOT_CA_UPDATE, sequence(*parts))


def cert_req_template(template: bytes | None) -> bytes:
    """The certReqTemplate ITAV (RFC 9483 §4.3.3); ``template`` is CertReqTemplateContent DER,
    None when the CA has no template to offer."""
    return itav(ID_IT_CERT_REQ_TEMPLATE, template)


def crls(lists: Sequence[x509.CertificateRevocationList]) -> bytes:
    """The crls ITAV answering crlStatusList (RFC 9483 §4.3.4); none newer: no value."""
    return itav(ID_IT_CRLS, sequence(*(_der(crl) for crl in lists)) if lists else None)


def current_crl(crl: x509.CertificateRevocationList) -> bytes:
    """The currentCRL ITAV (RFC 9810 §5.3.19.6)."""
    return itav(ID_IT_CURRENT_CRL, _der(crl))


def genp(itavs: Sequence[bytes]) -> bytes:
    """genp: the ITAVs answering a genm, in the order asked."""
    return _body(GENP, sequence(*itavs))
