"""Making CMS SignedData (RFC 5652 §5): certs-only bags and messages signed by a `Signer`.

EST /cacerts and SCEP GetCACert answer with a certs-only SignedData; SCEP CertRep,
EST serverkeygen and CMS-wrapped responses are signed by an RA or CA key. The key is
reached only through ``signer.private_key()`` inside ``signer.run()``, so an HSM key
signs here exactly as it signs certificates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ca import der
from ca.cms._asn1 import (
    OID_CONTENT_TYPE,
    OID_DATA,
    OID_MESSAGE_DIGEST,
    OID_SIGNED_DATA,
    OID_SIGNING_TIME,
    algorithm_identifier,
    issuer_and_serial_der,
)
from ca.errors import CAError, SignerUnavailable
from ca.sigalg import ECDSA_WITH, HASH_OIDS, RSA_ENCRYPTION, verify_signature
from ca.signers.base import Signer

SignedAttribute = tuple[str, tuple[bytes, ...]]
"""One attribute to sign: (dotted OID, the DER encoding of each value)."""

DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
    "sha1": hashes.SHA1,  # only when a caller names it, for legacy SCEP clients
}
_RESERVED = {OID_CONTENT_TYPE, OID_MESSAGE_DIGEST, OID_SIGNING_TIME}


def _certificate_set(certificates: Sequence[x509.Certificate]) -> bytes:
    """The contents of a CertificateSet: the certificates in the caller's order, duplicates dropped.

    Not DER-sorted on purpose (RFC 5652 asks DER only of signed attributes): clients read the
    bag in order, and sscep takes the first certificate that is not self-signed as the one it
    enrolled for, so a SCEP reply must put the new certificate before its CA chain, as OpenSSL
    does. asn1crypto would sort a SET OF it builds, so the SET is assembled here."""
    seen: set[bytes] = set()
    encodings: list[bytes] = []
    for cert in certificates:
        encoded = cert.public_bytes(Encoding.DER)
        if encoded not in seen:
            seen.add(encoded)
            encodings.append(encoded)
    return b"".join(encodings)


def _signed_data(
    *,
    version: int,
    digest_algorithms: bytes,
    content_type: str,
    content: bytes | None,
    certificates: bytes | None,
    signer_infos: bytes,
) -> bytes:
    """ContentInfo { signedData, [0] SignedData } (RFC 5652 §5.1), DER, from encoded parts.

    Assembled directly rather than through asn1crypto's classes: building and dumping those
    cost more than the RSA signature of a SCEP CertRep (bench/README.md, SCEP)."""
    encap = [der.oid(content_type)]
    if content is not None:
        encap.append(der.tlv(0xA0, der.tlv(0x04, content)))  # eContent [0] EXPLICIT OCTET STRING
    signed = der.tlv(
        0x30,
        der.tlv(0x02, bytes([version])),
        der.tlv(0x31, digest_algorithms),
        der.tlv(0x30, *encap),
        b"" if certificates is None else der.tlv(0xA0, certificates),  # [0] IMPLICIT SET OF Certificate
        der.tlv(0x31, signer_infos),
    )
    return der.tlv(0x30, der.oid(OID_SIGNED_DATA), der.tlv(0xA0, signed))


def certs_only(certificates: Sequence[x509.Certificate]) -> bytes:
    """A degenerate SignedData carrying only certificates (PKCS#7 certs-only), DER.

    No signers, no content: what EST /cacerts and SCEP GetCACert return.
    """
    return _signed_data(
        version=1,
        digest_algorithms=b"",
        content_type=OID_DATA,
        content=None,
        certificates=_certificate_set(certificates),
        signer_infos=b"",
    )


def _time(when: dt.datetime) -> cms.Time:
    """UTCTime for 1950-2049, GeneralizedTime otherwise (RFC 5652 §11.3)."""
    when = when.astimezone(dt.UTC).replace(microsecond=0)
    if 1950 <= when.year < 2050:
        return cms.Time(name="utc_time", value=when)
    return cms.Time(name="generalized_time", value=when)


def _attribute(oid: str, values: Sequence[bytes]) -> bytes:
    """Attribute ::= SEQUENCE { attrType OID, attrValues SET OF ANY }, the values DER-sorted."""
    return der.tlv(0x30, der.oid(oid), der.tlv(0x31, *sorted(values)))


def _signed_attributes(
    content_type: str, message_digest: bytes, when: dt.datetime, extra: Sequence[SignedAttribute]
) -> bytes:
    """The contents of the SET OF attributes, DER-sorted: verifiers such as OpenSSL re-encode the
    SET before checking."""
    for oid, values in extra:
        if oid in _RESERVED:
            raise ValueError(f"attribute {oid} is added by sign_data itself")
        if not values:
            raise ValueError(f"attribute {oid} has no values")
    if len({oid for oid, _ in extra}) != len(extra):
        raise ValueError("an attribute type appears twice")
    attrs = [
        _attribute(OID_CONTENT_TYPE, [der.oid(content_type)]),
        _attribute(OID_SIGNING_TIME, [_time(when).dump()]),
        _attribute(OID_MESSAGE_DIGEST, [der.tlv(0x04, message_digest)]),
        *(_attribute(oid, values) for oid, values in extra),
    ]
    return b"".join(sorted(attrs))


async def sign_data(
    signer: Signer,
    certificate: x509.Certificate,
    content: bytes,
    *,
    content_type: str = OID_DATA,
    digest: str = "sha256",
    attributes: Sequence[SignedAttribute] = (),
    certificates: Sequence[x509.Certificate] = (),
    include_signer_certificate: bool = True,
    signing_time: dt.datetime | None = None,
) -> bytes:
    """A SignedData (ContentInfo, DER) with ``content`` encapsulated, signed by ``signer``.

    ``certificate`` is the signer's certificate (it names the signer by issuer and
    serial, as SCEP requires). contentType, messageDigest and signingTime are always
    signed; ``attributes`` adds the caller's own (SCEP's, see ca.cms.scep). RSA keys sign
    PKCS#1 v1.5 (rsaEncryption, what OpenSSL emits and every SCEP client reads), EC keys
    ECDSA. Caller mistakes (unknown digest, reserved attribute) raise ValueError.
    """
    if digest not in DIGESTS:
        raise ValueError(f"digest {digest!r} is not one of {sorted(DIGESTS)}")
    hash_algorithm = DIGESTS[digest]()
    public = certificate.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        signature_oid = RSA_ENCRYPTION
    elif isinstance(public, ec.EllipticCurvePublicKey):
        signature_oid = ECDSA_WITH[digest]
    else:
        raise ValueError(f"CMS signing supports RSA and ECDSA keys, not {type(public).__name__}")

    h = hashes.Hash(hash_algorithm)
    h.update(content)
    when = signing_time or dt.datetime.now(dt.UTC)
    signed_attrs = _signed_attributes(content_type, h.finalize(), when, attributes)
    to_sign = der.tlv(0x31, signed_attrs)  # the SET OF form is what gets signed (§5.4)

    def work() -> bytes:
        key = signer.private_key()
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(to_sign, padding.PKCS1v15(), hash_algorithm)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(to_sign, ec.ECDSA(hash_algorithm))
        raise ValueError(f"signer {signer.name}: key type {type(key).__name__} cannot sign CMS here")

    signature = await signer.run(work)
    if signer.needs_signature_check:
        try:
            verify_signature(public, signature_oid, None, signature, to_sign, digest=HASH_OIDS[digest], allow_sha1=True)
        except CAError:
            raise SignerUnavailable(
                f"signer {signer.name}: CMS signature does not verify with the certificate's key"
            ) from None

    digest_algorithm = algorithm_identifier(cms.DigestAlgorithm, digest)
    signer_info = der.tlv(
        0x30,
        der.tlv(0x02, b"\x01"),  # version 1: the signer named by issuer and serial number
        issuer_and_serial_der(certificate),
        digest_algorithm,
        der.tlv(0xA0, signed_attrs),  # signedAttrs [0] IMPLICIT SET OF
        algorithm_identifier(cms.SignedDigestAlgorithm, signature_oid),
        der.tlv(0x04, signature),
    )
    bag = ([certificate] if include_signer_certificate else []) + list(certificates)
    return _signed_data(
        version=1 if content_type == OID_DATA else 3,
        digest_algorithms=digest_algorithm,
        content_type=content_type,
        content=content,
        certificates=_certificate_set(bag) if bag else None,
        signer_infos=signer_info,
    )
