"""Reading CMS SignedData from peers (RFC 5652 §5.6): bounded, strict, and verified.

A SCEP PKCSReq, an EST full-CMC or a CMS-wrapped message is only believed after its
one signer's signature checks out; this module returns the content together with who
signed it, never content alone. Whether that signer is trusted (self-signed SCEP
request key, a certificate we issued, an RA) is the caller's decision.
"""

from __future__ import annotations

import datetime as dt
import hmac
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ca.cms._asn1 import (
    MAX_ATTRIBUTES,
    MAX_CMS_BYTES,
    OID_CONTENT_TYPE,
    OID_MESSAGE_DIGEST,
    OID_SIGNED_DATA,
    OID_SIGNING_TIME,
    identifies,
    load_certificates,
    load_content_info,
    malformed,
)
from ca.der import encode_length
from ca.errors import CAError, FailureReason
from ca.sigalg import hash_for, verify_signature


@dataclass(frozen=True)
class SignerId:
    """How the SignerInfo names its signer: issuer DER + serial, or a subjectKeyIdentifier."""

    issuer: bytes | None = None
    serial: int | None = None
    key_identifier: bytes | None = None


@dataclass(frozen=True)
class SignedMessage:
    """A SignedData whose signature verified.

    ``signed_attributes`` maps dotted OIDs to the DER of each value (read SCEP's with
    `ca.cms.scep.read_scep_attributes`); it is empty when the signer signed the content
    directly.
    """

    content_type: str
    content: bytes
    signer_certificate: x509.Certificate
    signer_id: SignerId
    signed_attributes: Mapping[str, tuple[bytes, ...]]
    certificates: tuple[x509.Certificate, ...]
    digest_algorithm: str
    signing_time: dt.datetime | None


def parse_certs_only(der: bytes, *, max_bytes: int = MAX_CMS_BYTES) -> tuple[x509.Certificate, ...]:
    """The certificates of a (certs-only or any) SignedData; nothing is verified."""
    info = load_content_info(der, OID_SIGNED_DATA, max_bytes, "SignedData")
    with malformed("SignedData"):
        return load_certificates(info["content"]["certificates"], "SignedData")


def _signer_id(sid: cms.SignerIdentifier) -> SignerId:
    if sid.name == "issuer_and_serial_number":
        return SignerId(issuer=bytes(sid.chosen["issuer"].dump()), serial=int(sid.chosen["serial_number"].native))
    return SignerId(key_identifier=bytes(sid.chosen.native))


def _attributes(signed_attrs: cms.CMSAttributes) -> dict[str, tuple[bytes, ...]]:
    if len(signed_attrs) > MAX_ATTRIBUTES:
        raise CAError(f"SignerInfo has over {MAX_ATTRIBUTES} signed attributes", FailureReason.MALFORMED)
    out: dict[str, tuple[bytes, ...]] = {}
    for attr in signed_attrs:
        oid = attr["type"].dotted
        if oid in out:  # RFC 5652 §5.3: each attribute type at most once
            raise CAError(f"signed attribute {oid} appears twice", FailureReason.MALFORMED)
        values = tuple(bytes(v.dump()) for v in attr["values"])
        if not values or len(values) > MAX_ATTRIBUTES:
            raise CAError(f"signed attribute {oid} has {len(values)} values", FailureReason.MALFORMED)
        out[oid] = values
    return out


def _one(attrs: Mapping[str, tuple[bytes, ...]], oid: str, name: str) -> bytes:
    values = attrs.get(oid)
    if values is None or len(values) != 1:
        raise CAError(f"signed attributes need exactly one {name}", FailureReason.MALFORMED)
    return values[0]


def _check_signed_attributes(
    attrs: Mapping[str, tuple[bytes, ...]], content_type: str, digest: bytes
) -> dt.datetime | None:
    """contentType must repeat eContentType and messageDigest must match (RFC 5652 §5.3, §5.6)."""
    declared = core.ObjectIdentifier.load(_one(attrs, OID_CONTENT_TYPE, "contentType"), strict=True).dotted
    if declared != content_type:
        raise CAError("contentType attribute differs from the encapsulated content type", FailureReason.BAD_SIGNATURE)
    claimed = core.OctetString.load(_one(attrs, OID_MESSAGE_DIGEST, "messageDigest"), strict=True).native
    if not isinstance(claimed, bytes) or not hmac.compare_digest(claimed, digest):
        raise CAError("messageDigest does not match the content", FailureReason.BAD_SIGNATURE)
    if OID_SIGNING_TIME not in attrs:
        return None
    when = cms.Time.load(_one(attrs, OID_SIGNING_TIME, "signingTime"), strict=True).native
    if not isinstance(when, dt.datetime):
        raise CAError("signingTime is not a time", FailureReason.MALFORMED)
    return when


def unverified_signed_attributes(der: bytes, *, max_bytes: int = MAX_CMS_BYTES) -> dict[str, tuple[bytes, ...]]:
    """The signed attributes of a SignedData's one signer, NOT verified.

    Only for answering a message whose signature fails: SCEP still owes the sender a CertRep
    FAILURE that echoes its transactionID and senderNonce (RFC 8894 §3.3.2). Never act on them.
    """
    info = load_content_info(der, OID_SIGNED_DATA, max_bytes, "SignedData")
    with malformed("SignedData"):
        infos = info["content"]["signer_infos"]
        if len(infos) != 1:
            raise CAError(f"SignedData must have exactly one signer, has {len(infos)}", FailureReason.MALFORMED)
        signed_attrs = infos[0]["signed_attrs"]
        return {} if isinstance(signed_attrs, core.Void) else _attributes(signed_attrs)


def parse_signed_data(
    der: bytes,
    *,
    max_bytes: int = MAX_CMS_BYTES,
    certificates: Sequence[x509.Certificate] = (),
    detached_content: bytes | None = None,
    allow_sha1: bool = False,
    allow_md5: bool = False,
) -> SignedMessage:
    """Parse a ContentInfo(SignedData) with exactly one signer and verify that signer.

    The signer's certificate is looked up among the message's certificates, then among
    ``certificates`` (one the caller already holds). With signed attributes the
    signature covers them and messageDigest must match the content; without, it covers
    the content. SHA-1 and MD5 digests only when the caller allows them (legacy SCEP).
    Every refusal is a CAError: MALFORMED for structure, BAD_ALGORITHM for algorithms we
    do not accept, BAD_SIGNATURE for what does not verify.
    """
    info = load_content_info(der, OID_SIGNED_DATA, max_bytes, "SignedData")
    with malformed("SignedData"):
        signed = info["content"]
        encap = signed["encap_content_info"]
        content_type = encap["content_type"].dotted
        econtent = encap["content"]
        if isinstance(econtent, core.Void):
            if detached_content is None:
                raise CAError("SignedData has no content and none was supplied", FailureReason.MALFORMED)
            content = detached_content
        else:
            if detached_content is not None:
                raise CAError("SignedData has content and detached content was supplied", FailureReason.MALFORMED)
            content = bytes(econtent.native if isinstance(econtent.native, bytes) else econtent.contents)
        bag = load_certificates(signed["certificates"], "SignedData")
        infos = signed["signer_infos"]
        if len(infos) != 1:
            raise CAError(f"SignedData must have exactly one signer, has {len(infos)}", FailureReason.MALFORMED)
        si = infos[0]
        digest_oid = si["digest_algorithm"]["algorithm"].dotted
        algorithm = hash_for(digest_oid, allow_sha1=allow_sha1, allow_md5=allow_md5)
        sid = si["sid"]
        signer_certificate = next((c for c in (*bag, *certificates) if identifies(sid, c)), None)
        if signer_certificate is None:
            raise CAError("the signer's certificate is not in the message", FailureReason.MALFORMED)
        h = hashes.Hash(algorithm)
        h.update(content)
        digest = h.finalize()
        signed_attrs = si["signed_attrs"]
        signing_time = None
        attrs: dict[str, tuple[bytes, ...]] = {}
        if isinstance(signed_attrs, core.Void):
            to_verify = content
        else:
            attrs = _attributes(signed_attrs)
            signing_time = _check_signed_attributes(attrs, content_type, digest)
            body = bytes(signed_attrs.contents)
            to_verify = b"\x31" + encode_length(len(body)) + body  # verified as the SET OF (§5.4)
        sig_alg = si["signature_algorithm"]
        params = sig_alg["parameters"]
        verify_signature(
            signer_certificate.public_key(),
            sig_alg["algorithm"].dotted,
            bytes(params.dump()) if params.native is not None else None,
            bytes(si["signature"].native),
            to_verify,
            digest=digest_oid,
            allow_sha1=allow_sha1,
            allow_md5=allow_md5,
        )
        return SignedMessage(
            content_type=content_type,
            content=content,
            signer_certificate=signer_certificate,
            signer_id=_signer_id(sid),
            signed_attributes=types.MappingProxyType(attrs),
            certificates=bag,
            digest_algorithm=algorithm.name,
            signing_time=signing_time,
        )
