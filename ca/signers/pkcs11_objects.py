"""Finding things on a token: the token a URI names, its key objects and the key's public half.

All of these run on the module's token thread (see `ca.signers.pkcs11_token`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from pkcs11.constants import Attribute, ObjectClass, TokenFlag
from pkcs11.mechanisms import KeyType
from pkcs11.types import Object, PrivateKey, Session, Token

from ca.signers.pkcs11_token import _NotFound
from ca.signers.pkcs11_uri import Pkcs11Uri

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

# DER-encoded curve OIDs as tokens store them in CKA_EC_PARAMS.
_CURVES: dict[bytes, ec.EllipticCurve] = {
    bytes.fromhex("06082a8648ce3d030107"): ec.SECP256R1(),
    bytes.fromhex("06052b81040022"): ec.SECP384R1(),
    bytes.fromhex("06052b81040023"): ec.SECP521R1(),
}
_ED25519_PARAMS = (bytes.fromhex("06032b6570"), b"\x13\x0cedwards25519")  # OID, or PKCS#11 3.0 name


def _token_matches(lib: Pkcs11Lib, uri: Pkcs11Uri) -> bool:
    if uri.library_manufacturer is not None and lib.manufacturer_id != uri.library_manufacturer:
        return False
    if uri.library_description is not None and (lib.library_description != uri.library_description):
        return False
    if uri.library_version is not None:
        major, _, minor = uri.library_version.partition(".")
        if lib.library_version != (int(major), int(minor or "0")):
            return False
    return True


def _find_token(lib: Pkcs11Lib, uri: Pkcs11Uri) -> Token:
    """The one initialised token the URI names (token thread only)."""
    if not _token_matches(lib, uri):
        raise _NotFound("the PKCS#11 library does not match the URI's library-* attributes")
    found: list[Token] = []
    for slot in lib.get_slots(token_present=True):
        if uri.slot_id is not None and slot.slot_id != uri.slot_id:
            continue
        if uri.slot_description is not None and slot.slot_description != uri.slot_description:
            continue
        if uri.slot_manufacturer is not None and slot.manufacturer_id != uri.slot_manufacturer:
            continue
        token = slot.get_token()
        if not token.flags & TokenFlag.TOKEN_INITIALIZED:
            continue
        if uri.token is not None and token.label != uri.token:
            continue
        if uri.serial is not None and token.serial != uri.serial.encode():
            continue
        if uri.manufacturer is not None and token.manufacturer_id != uri.manufacturer:
            continue
        if uri.model is not None and token.model != uri.model:
            continue
        found.append(token)
    if not found:
        raise _NotFound("no initialised token matches the URI")
    if len(found) > 1:
        labels = ", ".join(t.label for t in found)
        raise _NotFound(f"{len(found)} tokens match the URI ({labels}); add token= or serial=")
    return found[0]


def _key_template(uri: Pkcs11Uri, object_class: ObjectClass) -> dict[Attribute, Any]:
    attrs: dict[Attribute, Any] = {Attribute.CLASS: object_class}
    if uri.object is not None:
        attrs[Attribute.LABEL] = uri.object
    if uri.id is not None:
        attrs[Attribute.ID] = uri.id
    return attrs


def _find_objects(session: Session, attrs: dict[Attribute, Any]) -> list[Object]:
    # Drain the search so no FindObjects operation stays active on the session.
    return list(session.get_objects(attrs))


def _der_octet_string(data: bytes) -> bytes | None:
    """The payload of a DER OCTET STRING, or None if data is not exactly one."""
    if len(data) < 2 or data[0] != 0x04:
        return None
    length, offset = data[1], 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or len(data) < 2 + count:
            return None
        length, offset = int.from_bytes(data[2 : 2 + count], "big"), 2 + count
    return data[offset:] if offset + length == len(data) else None


def _point(raw: bytes, size: int) -> bytes:
    """CKA_EC_POINT is DER-wrapped on most tokens and raw on a few: accept both."""
    inner = _der_octet_string(raw)
    if inner is not None and len(inner) == size:
        return inner
    if len(raw) == size:
        return raw
    raise _NotFound(f"unexpected CKA_EC_POINT encoding ({len(raw)} bytes)")


def _public_from_token(session: Session, key: PrivateKey) -> tuple[str, CertificateIssuerPublicKeyTypes]:
    """The key's type and public half, from its public-key object or its certificate."""
    match = {Attribute.ID: key.id, Attribute.LABEL: key.label}
    publics = _find_objects(session, {**match, Attribute.CLASS: ObjectClass.PUBLIC_KEY})
    if len(publics) != 1:
        publics = _find_objects(session, {Attribute.ID: key.id, Attribute.CLASS: ObjectClass.PUBLIC_KEY})
    key_type = key.key_type
    if key_type == KeyType.RSA:
        source: Object = publics[0] if len(publics) == 1 else key
        attrs = source.get_attributes([Attribute.MODULUS, Attribute.PUBLIC_EXPONENT])
        n = int.from_bytes(attrs[Attribute.MODULUS], "big")
        e = int.from_bytes(attrs[Attribute.PUBLIC_EXPONENT], "big")
        return "rsa", rsa.RSAPublicNumbers(e, n).public_key()
    if len(publics) == 1:
        attrs = publics[0].get_attributes([Attribute.EC_PARAMS, Attribute.EC_POINT])
        params, raw = bytes(attrs[Attribute.EC_PARAMS]), bytes(attrs[Attribute.EC_POINT])
        if key_type == KeyType.EC:
            curve = _CURVES.get(params)
            if curve is None:
                raise _NotFound(f"unsupported EC curve (CKA_EC_PARAMS {params.hex()})")
            size = 1 + 2 * ((curve.key_size + 7) // 8)
            return "ec", ec.EllipticCurvePublicKey.from_encoded_point(curve, _point(raw, size))
        if key_type == KeyType.EC_EDWARDS:
            if params not in _ED25519_PARAMS:
                raise _NotFound(f"unsupported Edwards curve (CKA_EC_PARAMS {params.hex()})")
            return "ed25519", ed25519.Ed25519PublicKey.from_public_bytes(_point(raw, 32))
        raise _NotFound(f"unsupported key type {key_type!r}")
    certs = _find_objects(session, {Attribute.ID: key.id, Attribute.CLASS: ObjectClass.CERTIFICATE})
    if len(certs) == 1:
        public = x509.load_der_x509_certificate(bytes(certs[0][Attribute.VALUE])).public_key()
        if isinstance(public, ec.EllipticCurvePublicKey) and key_type == KeyType.EC:
            return "ec", public
        if isinstance(public, ed25519.Ed25519PublicKey) and key_type == KeyType.EC_EDWARDS:
            return "ed25519", public
    raise _NotFound("no public key or certificate object with the key's id to read it from")
