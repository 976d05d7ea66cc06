"""OCSPResponse encoding (RFC 6960 §4.2.1) from precomputed parts.

A pre-signed response costs one short TBS assembly and one signature; everything
that depends only on the responder (ResponderID, algorithm, certs) is encoded once.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from ca.der import encode_length, oid
from ca.revocation import asn1
from ca.revocation.model import HASH_OIDS, NONCE_OID, CertId, CertStatus, ResponseStatus
from ca.revocation.reasons import reason_code

_BASIC = oid("1.3.6.1.5.5.7.48.1.1")  # id-pkix-ocsp-basic
_NONCE = oid(NONCE_OID)
# Hash AlgorithmIdentifiers with NULL parameters, as OpenSSL, NSS and Go write them.
_HASH_ALGS = {name: asn1.seq(oid(dotted), b"\x05\x00") for name, dotted in HASH_OIDS.items()}
_GOOD = b"\x80\x00"  # [0] IMPLICIT NULL
_UNKNOWN = b"\x82\x00"  # [2] IMPLICIT UnknownInfo (NULL)


def error_response(status: ResponseStatus) -> bytes:
    """An unsuccessful OCSPResponse: status only, no responseBytes (RFC 6960 §4.2.1)."""
    if status is ResponseStatus.SUCCESSFUL:
        raise ValueError("a successful response carries responseBytes")
    return asn1.seq(asn1.enumerated(int(status)))


@lru_cache(maxsize=256)
def _cert_id_prefix(hash_alg: str, name_hash: bytes, key_hash: bytes) -> bytes:
    return _HASH_ALGS[hash_alg] + asn1.octet_string(name_hash) + asn1.octet_string(key_hash)


@lru_cache(maxsize=4096)
def _time(at: dt.datetime) -> bytes:
    """Responses are stamped to the second, so a few encodings serve every response signed in it."""
    return asn1.generalized_time(at)


def cert_id(cid: CertId) -> bytes:
    body = _cert_id_prefix(cid.hash_alg, cid.issuer_name_hash, cid.issuer_key_hash) + asn1.integer(cid.serial)
    return b"\x30" + encode_length(len(body)) + body


def cert_status(status: CertStatus) -> bytes:
    if status.kind == "good":
        return _GOOD
    if status.kind == "unknown":
        return _UNKNOWN
    assert status.revoked_at is not None
    body = _time(status.revoked_at)
    # 'unspecified' is said by leaving revocationReason out, as on CRLs (BR 7.2.2 / 7.3).
    if status.reason and status.reason != "unspecified":
        body += asn1.explicit(0, asn1.enumerated(reason_code(status.reason)))
    return asn1.tlv(0xA1, body)


def single_response(cid: CertId, status: CertStatus, this_update: dt.datetime, next_update: dt.datetime) -> bytes:
    body = cert_id(cid) + cert_status(status) + _time(this_update) + b"\xa0\x11" + _time(next_update)
    return b"\x30" + encode_length(len(body)) + body


def response_data(
    responder_id: bytes, produced_at: dt.datetime, singles: list[bytes], nonce: bytes | None = None
) -> bytes:
    """tbsResponseData (version v1 is the DEFAULT and so omitted)."""
    extensions = b""
    if nonce is not None:
        extensions = asn1.explicit(1, asn1.seq(asn1.extension(_NONCE, nonce)))
    return asn1.seq(responder_id, _time(produced_at), asn1.seq(*singles), extensions)


def responder_id_by_key(key_sha1: bytes) -> bytes:
    """ResponderID byKey [2] EXPLICIT KeyHash: smaller than byName (RFC 9919 recommends it)."""
    return asn1.explicit(2, asn1.octet_string(key_sha1))


def certs_field(certificates_der: list[bytes]) -> bytes:
    """certs [0] EXPLICIT SEQUENCE OF Certificate, or nothing."""
    if not certificates_der:
        return b""
    return asn1.explicit(0, asn1.seq(*certificates_der))


def ocsp_response(tbs: bytes, algorithm: bytes, signature: bytes, certs: bytes) -> bytes:
    basic = asn1.seq(tbs, algorithm, asn1.tlv(0x03, b"\x00" + signature), certs)
    response_bytes = asn1.seq(_BASIC, asn1.octet_string(basic))
    return asn1.seq(asn1.enumerated(0), asn1.explicit(0, response_bytes))
