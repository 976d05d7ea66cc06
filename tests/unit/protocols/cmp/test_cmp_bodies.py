"""Every reply body decodes under pyasn1-alt-modules' RFC 9810 schema with the values put in,
including those the openssl tests cannot reach (OpenSSL 3.0 has no rootCaUpdate or
crlStatusList): the builders are DER by hand, the schema is the independent check."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_private_key
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1_alt_modules import rfc9810

from protocols.cmp import bodies
from protocols.cmp.der import explicit, sequence
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.message import decode_message
from protocols.cmp.reply import build_reply
from tests.pkilint_check import assert_crl_lints_clean
from tests.unit.protocols.cmp.cmp_vectors import CA_NAME, VECTORS, certificate


def _body(der: bytes) -> Any:
    value, rest = der_decoder.decode(der, asn1Spec=rfc9810.PKIBody(), decodeOpenTypes=True)
    assert not rest
    assert der_encoder.encode(value) == der  # DER in, the same DER out
    return value


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _fail_bits(status_info: Any) -> list[int]:
    bits = status_info["failInfo"]
    return [i for i, bit in enumerate(bits) if bit]


def _root_crl() -> x509.CertificateRevocationList:
    root = certificate("root.pem")
    key = load_pem_private_key((VECTORS / "root.key").read_bytes(), None)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    assert_crl_lints_clean(crl.public_bytes(Encoding.DER))
    return crl


def test_ip_with_certificate_and_ca_pubs() -> None:
    body = _body(bodies.cert_rep(bodies.IP, 7, certificate("issued.pem"), ca_pubs=[certificate("root.pem")]))
    response = body["ip"]["response"][0]
    assert int(response["certReqId"]) == 7 and int(response["status"]["status"]) == 0
    issued = response["certifiedKeyPair"]["certOrEncCert"]["certificate"]
    assert der_encoder.encode(issued) == explicit(0, _der(certificate("issued.pem")))
    assert der_encoder.encode(body["ip"]["caPubs"][0]) == _der(certificate("root.pem"))


@pytest.mark.parametrize(("tag", "name"), [(bodies.CP, "cp"), (bodies.KUP, "kup")])
def test_cp_kup_waiting_and_rejection(tag: int, name: str) -> None:
    waiting = _body(bodies.cert_rep(tag, 0, None))[name]["response"][0]
    assert int(waiting["status"]["status"]) == bodies.PkiStatus.waiting
    assert not waiting["certifiedKeyPair"].isValue
    refused = _body(bodies.cert_rep_rejection(tag, -1, CmpFailure(FailInfo.badPOP, "no")))[name]["response"][0]
    assert int(refused["certReqId"]) == -1
    assert int(refused["status"]["status"]) == bodies.PkiStatus.rejection
    assert _fail_bits(refused["status"]) == [FailInfo.badPOP]


def test_rp_accepted_and_refused() -> None:
    assert int(_body(bodies.revocation_reply(bodies.PkiStatus.accepted))["rp"]["status"][0]["status"]) == 0
    refused = _body(bodies.revocation_reply(bodies.PkiStatus.rejection, CmpFailure(FailInfo.certRevoked, "already")))
    assert _fail_bits(refused["rp"]["status"][0]) == [FailInfo.certRevoked]


@pytest.mark.parametrize("bit", list(FailInfo))
def test_error_carries_exactly_the_one_fail_info_bit(bit: FailInfo) -> None:
    body = _body(bodies.error(CmpFailure(bit, "why"), error_code=42))["error"]
    assert _fail_bits(body["pKIStatusInfo"]) == [bit]
    assert str(body["pKIStatusInfo"]["statusString"][0]) == "why"
    assert int(body["errorCode"]) == 42


def test_error_hides_our_own_faults() -> None:
    body = _body(bodies.error(CmpFailure(FailInfo.systemFailure, "disk /dev/sda3 full", peer_caused=False)))
    assert "sda3" not in str(body["error"]["pKIStatusInfo"]["statusString"][0])


def test_poll_rep_and_pki_conf() -> None:
    poll = _body(bodies.poll_rep(3, 60, "waiting for approval"))["pollRep"][0]
    assert (int(poll["certReqId"]), int(poll["checkAfter"]), str(poll["reason"][0])) == (3, 60, "waiting for approval")
    assert _body(bodies.pki_conf()).getName() == "pkiconf"


def test_genp_with_every_itav() -> None:
    crl = _root_crl()
    template = sequence(sequence())  # CertReqTemplateContent { certTemplate {} }
    itavs = [
        bodies.ca_certs([certificate("root.pem")]),
        bodies.root_ca_update(certificate("root.pem"), certificate("server.pem"), certificate("client.pem")),
        bodies.root_ca_update(None),
        bodies.cert_req_template(template),
        bodies.cert_req_template(None),
        bodies.crls([crl]),
        bodies.current_crl(crl),
    ]
    genp = _body(bodies.genp(itavs))["genp"]
    types = [str(itav["infoType"]) for itav in genp]
    assert types == [
        bodies.ID_IT_CA_CERTS,
        bodies.ID_IT_ROOT_CA_UPDATE,
        bodies.ID_IT_ROOT_CA_UPDATE,
        bodies.ID_IT_CERT_REQ_TEMPLATE,
        bodies.ID_IT_CERT_REQ_TEMPLATE,
        bodies.ID_IT_CRLS,
        bodies.ID_IT_CURRENT_CRL,
    ]
    assert der_encoder.encode(genp[0]["infoValue"][0]) == _der(certificate("root.pem"))
    update = genp[1]["infoValue"]
    assert der_encoder.encode(update["newWithNew"]) == _der(certificate("root.pem"))
    assert der_encoder.encode(update["newWithOld"]) == explicit(0, _der(certificate("server.pem")))
    assert der_encoder.encode(update["oldWithNew"]) == explicit(1, _der(certificate("client.pem")))
    assert not genp[2]["infoValue"].isValue and not genp[4]["infoValue"].isValue
    assert der_encoder.encode(genp[5]["infoValue"][0]) == crl.public_bytes(Encoding.DER)
    assert der_encoder.encode(genp[6]["infoValue"]) == crl.public_bytes(Encoding.DER)


def test_unprotected_error_to_undecodable_bytes_has_a_null_dn_recipient() -> None:
    reply = asyncio.run(build_reply(None, CA_NAME, bodies.error(CmpFailure(FailInfo.badDataFormat, "x")), None))
    message = decode_message(reply)
    assert message.protection is None and message.transaction_id is None and message.recip_nonce is None
    assert message.recipient["directoryName"]["rdnSequence"] == []
    assert message.body_type == "error"
