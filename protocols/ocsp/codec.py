"""OCSP wire format <-> StatusQuery / HTTP answer (sans-IO).

Requests: cryptography's strict DER parser first (one CertID, microseconds); a
request it refuses is size- and shape-checked with a header walker, its requestList
counted against the cap, and only then parsed with asn1crypto (DOS-02, OCSP-06).
GET requests carry the DER in the path, base64 and percent-escaped (RFC 6960
Appendix A.1), as nginx's stapling sends them.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
from functools import lru_cache
from urllib.parse import unquote

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.x509 import ocsp

from ca.revocation.asn1 import DerError, check_shape, children, header
from ca.revocation.model import HASH_BY_OID, NONCE_OID, CertId, OcspAnswer, StatusQuery
from protocols.ocsp.errors import CONTENT_TYPE, malformed

MAX_DEPTH = 24  # an OCSPRequest with a signature and certificates nests about 12 deep
MAX_NONCE = 32  # RFC 8954 §2.1: 1..32 octets; 0 or more is malformedRequest


def decode_request(body: bytes, *, max_bytes: int, max_certs: int) -> StatusQuery:
    """An OCSPRequest -> StatusQuery; raises OcspError(malformedRequest) with the reason."""
    if not body:
        raise malformed("empty request")
    if len(body) > max_bytes:
        raise malformed(f"request longer than {max_bytes} bytes")
    try:
        request = ocsp.load_der_ocsp_request(body)
    except (ValueError, NotImplementedError):  # several CertIDs: NotImplementedError
        return _decode_general(body, max_certs)
    try:
        hash_name = request.hash_algorithm.name
        serial = request.serial_number
        cert_id = CertId(hash_name, request.issuer_name_hash, request.issuer_key_hash, serial)
    except UnsupportedAlgorithm:
        raise malformed("unsupported CertID hash algorithm") from None
    except ValueError as exc:
        raise malformed(str(exc)) from None
    try:
        extensions = request.extensions
    except ValueError as exc:
        raise malformed(f"bad request extensions: {exc}") from None
    nonce = None
    for ext in extensions:
        if type(ext.value) is x509.OCSPNonce:  # not isinstance: an ABC check costs more than the parse
            nonce = _nonce_value(ext.value.nonce)
        elif ext.critical:
            raise malformed(f"unsupported critical extension {ext.oid.dotted_string}")
    return StatusQuery((cert_id,), nonce)


def _nonce_value(nonce: bytes) -> bytes:
    """The extnValue to echo: the DER OCTET STRING holding the nonce."""
    if not 1 <= len(nonce) <= MAX_NONCE:
        raise malformed(f"nonce of {len(nonce)} octets (RFC 8954 allows 1 to {MAX_NONCE})")
    return b"\x04" + bytes((len(nonce),)) + nonce


def _request_count(body: bytes) -> int:
    """Entries in requestList, read from the headers only."""
    _, start, end = header(body, 0)
    _, tbs_start, tbs_end = header(body, start, end)
    for tag, _, list_start, list_end in children(body, tbs_start, tbs_end):
        if tag == 0x30:  # requestList is the only untagged SEQUENCE in TBSRequest
            return sum(1 for _ in children(body, list_start, list_end))
    raise DerError("no requestList")


def _decode_general(body: bytes, max_certs: int) -> StatusQuery:
    try:
        count = _request_count(body)
        if count > max_certs:
            raise malformed(f"the request names {count} certificates; at most {max_certs} are answered")
        check_shape(body, max_depth=MAX_DEPTH, max_nodes=64 + 16 * max_certs)
    except DerError as exc:
        raise malformed(f"not a DER OCSPRequest: {exc}") from None
    if count == 0:
        raise malformed("the request names no certificate")
    try:
        parsed = asn1_ocsp.OCSPRequest.load(body, strict=True)
        tbs = parsed["tbs_request"]
        cert_ids = tuple(_cert_id(item["req_cert"]) for item in tbs["request_list"])
        nonce = None
        for ext in tbs["request_extensions"] or ():
            if ext["extn_id"].dotted == NONCE_OID:
                nonce = _general_nonce(ext["extn_value"].contents)
            elif ext["critical"].native:
                raise malformed(f"unsupported critical extension {ext['extn_id'].dotted}")
        return StatusQuery(cert_ids, nonce)
    except ValueError as exc:
        raise malformed(f"not a valid OCSPRequest: {exc}") from None
    except (TypeError, KeyError, OverflowError) as exc:
        raise malformed(f"not a valid OCSPRequest: {type(exc).__name__}") from None


def _cert_id(item: asn1_ocsp.CertId) -> CertId:
    dotted = item["hash_algorithm"]["algorithm"].dotted
    name = HASH_BY_OID.get(dotted)
    if name is None:
        raise malformed(f"unsupported CertID hash algorithm {dotted}")
    name_hash = item["issuer_name_hash"].native
    key_hash = item["issuer_key_hash"].native
    serial = item["serial_number"].native
    if not isinstance(serial, int) or serial < 0:
        raise malformed("bad serial number")
    return CertId(name, name_hash, key_hash, serial)


def _general_nonce(value: bytes) -> bytes:
    try:
        tag, start, end = header(value, 0)
    except DerError:
        tag, start, end = 0, 0, -1
    if tag != 0x04 or end != len(value):
        raise malformed("the nonce is not an OCTET STRING (RFC 8954)")
    return _nonce_value(value[start:end])


def decode_get_path(path: str, *, max_bytes: int) -> bytes:
    """'/<percent-escaped base64 DER>' -> DER. The server hands the path percent-decoded;
    a second decoding pass catches clients that escaped twice."""
    text = path[1:] if path.startswith("/") else path
    if "%" in text:
        text = unquote(text)
    text = text.replace("-", "+").replace("_", "/")  # tolerate the URL-safe alphabet too
    if not text:
        raise malformed("empty GET request")
    if len(text) > (max_bytes * 4) // 3 + 4:
        raise malformed("GET request too long")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise malformed("the GET path is not base64") from None


@lru_cache(maxsize=65536)
def http_date(at: dt.datetime) -> str:
    """Few distinct values (producedAt, nextUpdate of stored responses): worth remembering."""
    return email.utils.format_datetime(at.astimezone(dt.UTC), usegmt=True)


def encode_answer(answer: OcspAnswer, *, get: bool, now: dt.datetime) -> tuple[int, dict[str, str], bytes]:
    """Status, headers, body. GET answers that are pre-signed carry the RFC 9919 (§6.2 of
    RFC 5019) caching headers: max-age no later than nextUpdate, ETag, Last-Modified, Expires."""
    headers = {"Content-Type": CONTENT_TYPE}
    if not get:
        return 200, headers, answer.der
    if answer.cacheable and answer.next_update is not None and answer.produced_at is not None:
        max_age = max(0, int((answer.next_update - now).total_seconds()))
        headers["Cache-Control"] = f"max-age={max_age}, public, no-transform, must-revalidate"
        headers["Last-Modified"] = http_date(answer.produced_at)
        headers["Expires"] = http_date(answer.next_update)
        headers["ETag"] = answer.etag
    else:
        headers["Cache-Control"] = "no-store"
    return 200, headers, answer.der
