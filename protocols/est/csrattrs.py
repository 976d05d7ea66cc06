"""/csrattrs (RFC 7030 §4.5, RFC 8951 §3.4): what a profile wants a CSR to carry.

A profile says it through its key types and the EST switches: each allowed key algorithm (EC
as id-ecPublicKey with its curves), the profile's signature hash, and challengePassword when
proof-of-possession linking is required (RFC 7030 §3.5). The answer is advice: the core's
policy refuses a CSR outside the profile whether or not the client asked first (EST-10).
"""

from __future__ import annotations

from typing import ClassVar

from asn1crypto import core

from ca.profiles.model import Profile

OID_CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
OID_RSA = "1.2.840.113549.1.1.1"
OID_ED25519 = "1.3.101.112"
CURVES = {"ec-p256": "1.2.840.10045.3.1.7", "ec-p384": "1.3.132.0.34"}
SIGNATURE_OIDS = {  # ecdsa-with-SHAx: what an EC profile's signature_hash asks of the CSR's signature
    "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3",
    "sha512": "1.2.840.10045.4.3.4",
}


class _Values(core.SetOf):  # type: ignore[misc]
    _child_spec = core.ObjectIdentifier


class _Attribute(core.Sequence):  # type: ignore[misc]
    _fields: ClassVar = [("type", core.ObjectIdentifier), ("values", _Values)]


class _AttrOrOid(core.Choice):  # type: ignore[misc]
    _alternatives: ClassVar = [("oid", core.ObjectIdentifier), ("attribute", _Attribute)]


class CsrAttrs(core.SequenceOf):  # type: ignore[misc]
    _child_spec = _AttrOrOid


def _oid(value: str) -> _AttrOrOid:
    return _AttrOrOid(name="oid", value=core.ObjectIdentifier(value))


def _attribute(kind: str, values: list[str]) -> _AttrOrOid:
    return _AttrOrOid(name="attribute", value=_Attribute({"type": kind, "values": values}))


def csr_attributes(profile: Profile, *, pop_required: bool) -> bytes:
    """The CsrAttrs DER for ``profile``; an empty SEQUENCE when it asks for nothing."""
    items: list[_AttrOrOid] = []
    if pop_required:
        items.append(_oid(OID_CHALLENGE_PASSWORD))
    curves = sorted(CURVES[k] for k in profile.key_types if k in CURVES)
    if curves:
        items.append(_attribute(OID_EC_PUBLIC_KEY, curves))
        if profile.signature_hash in SIGNATURE_OIDS:
            items.append(_oid(SIGNATURE_OIDS[profile.signature_hash]))
    if any(k.startswith("rsa-") for k in profile.key_types):
        items.append(_oid(OID_RSA))
    if "ed25519" in profile.key_types:
        items.append(_oid(OID_ED25519))
    return bytes(CsrAttrs(items).dump())
