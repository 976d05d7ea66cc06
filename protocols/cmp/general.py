"""genm -> genp (RFC 9483 §4.3): what a device may ask the CA outside an enrolment.

- caCerts (§4.3.1): the issuing chain and root of the profile's issuer;
- rootCaKeyUpdate (§4.3.2): after a root rollover (`tetra ca rollover ROOT`), newWithNew,
  newWithOld and oldWithNew of the root the client names in rootCaCert, or without one (or
  asked by infoType rootCaKeyUpdate, as OpenSSL 3.0 does) of the root above the profile's
  issuer; else "no update" (no value);
- certReqTemplate (§4.3.3): an empty CertTemplate (the profile shapes the subject and
  extensions) and keySpec listing the key types the profile accepts;
- crlStatusList (§4.3.4) and currentCRL: the issuer's current complete CRL.

An infoType this CA does not know is left out of the genp, as RFC 9810 §5.3.19 allows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography import x509

from ca.der import oid
from ca.interface import CoreApi
from ca.profiles.model import Profile
from ca.revocation.crl import COMPLETE, CrlService
from ca.revocation.pointers import FULL
from protocols.cmp import bodies
from protocols.cmp.der import integer, sequence
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.exchange import Answer, Exchange

MAX_ITAVS = 16
ID_REG_CTRL_ALG_ID = "1.3.6.1.5.5.7.5.1.11"
ID_REG_CTRL_RSA_KEY_LEN = "1.3.6.1.5.5.7.5.1.12"
ID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
CURVES = {"ec-p256": "1.2.840.10045.3.1.7", "ec-p384": "1.3.132.0.34"}
EDWARDS = {"ed25519": "1.3.101.112", "ed448": "1.3.101.113"}


def key_spec(key_types: frozenset[str]) -> bytes:
    """Controls naming each key type the profile accepts: an algId per EC curve or Edwards
    key, and rsaKeyLen with the smallest RSA size allowed (RFC 9483 §4.3.3)."""
    controls: list[bytes] = []
    for name in sorted(key_types):
        if name in CURVES:
            controls.append(sequence(oid(ID_REG_CTRL_ALG_ID), sequence(oid(ID_EC_PUBLIC_KEY), oid(CURVES[name]))))
        elif name in EDWARDS:
            controls.append(sequence(oid(ID_REG_CTRL_ALG_ID), sequence(oid(EDWARDS[name]))))
    rsa_sizes = sorted(int(name.split("-")[1]) for name in key_types if name.startswith("rsa-"))
    if rsa_sizes:
        controls.append(sequence(oid(ID_REG_CTRL_RSA_KEY_LEN), integer(rsa_sizes[0])))
    return sequence(*controls) if controls else b""


def cert_req_template(profile: Profile) -> bytes:
    """CertReqTemplateContent DER for ``profile``."""
    return sequence(sequence(), key_spec(profile.key_types))


class GeneralMessages:
    def __init__(self, core: CoreApi, crls: CrlService | None) -> None:
        self.core = core
        self.crls = crls

    async def genp(self, ex: Exchange) -> Answer:
        content = ex.message.body.getComponent()
        if len(content) > MAX_ITAVS:
            raise CmpFailure(FailInfo.badRequest, f"a genm may ask at most {MAX_ITAVS} questions")
        issuer = self.core.issuing_generation(ex.profile.issuer or self.core.default_issuer)
        answers: list[bytes] = []
        for itav in content:
            info_type = str(itav["infoType"])
            if info_type == bodies.ID_IT_ROOT_CA_CERT:  # RFC 9483 §4.3.2: the root the client has
                answers.append(self._root_update(issuer, itav["infoValue"]))
                continue
            answer = await self._answer(info_type, issuer, ex.profile)
            if answer is not None:
                answers.append(answer)
        return Answer(bodies.genp(answers))

    async def _answer(self, info_type: str, issuer: str, profile: Profile) -> bytes | None:
        simple: dict[str, Callable[[], bytes]] = {
            bodies.ID_IT_CA_CERTS: lambda: bodies.ca_certs(self._chain(issuer)),
            bodies.ID_IT_ROOT_CA_UPDATE: lambda: bodies.root_ca_update(*(self.core.root_update(issuer) or (None,))),
            bodies.ID_IT_CERT_REQ_TEMPLATE: lambda: bodies.cert_req_template(cert_req_template(profile)),
        }
        if info_type in simple:
            return simple[info_type]()
        if info_type == bodies.ID_IT_CRL_STATUS_LIST:
            crl = await self._crl(issuer)
            return bodies.crls([crl] if crl is not None else [])
        if info_type == bodies.ID_IT_CURRENT_CRL:
            crl = await self._crl(issuer)
            return bodies.current_crl(crl) if crl is not None else bodies.itav(bodies.ID_IT_CURRENT_CRL)
        return None

    def _root_update(self, issuer: str, old_root: Any) -> bytes:
        """rootCaKeyUpdate for the root the client names (rootCaCert's value), or, without one,
        for the root above the profile's issuer."""
        if not old_root.isValue:
            return bodies.root_ca_update(*(self.core.root_update(issuer) or (None,)))
        try:
            certificate = x509.load_der_x509_certificate(bytes(old_root))
        except ValueError:
            raise CmpFailure(FailInfo.badDataFormat, "rootCaCert: the value is not a certificate") from None
        return bodies.root_ca_update(*(self.core.root_update(issuer, certificate) or (None,)))

    def _chain(self, issuer: str) -> tuple[x509.Certificate, ...]:
        chain = self.core.chain(issuer)
        roots = tuple(root for root in self.core.roots if root.subject == chain[-1].issuer and root not in chain)
        return (*chain, *roots)

    async def _crl(self, issuer: str) -> x509.CertificateRevocationList | None:
        if self.crls is None:
            return None
        record = await self.crls.fetch(issuer, FULL, COMPLETE)
        return x509.load_der_x509_crl(record.der) if record is not None and record.der is not None else None
