"""tests/cmp_client.py, the in-process CMP client the server tests and the benchmark use, judged
by OpenSSL: its reply reader against the openssl-made vectors (tests/vectors/cmp/), its requests
against the server's own decoder, MAC and signature checks and CRMF POP check, and whole
transactions against OpenSSL 3.0's mock server (`openssl cmp -port`, tests/cmp_mock.py), which
validates protection, transactionID, nonces and certHash itself (CMP-14's client side).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ca.crmf import check_pop
from ca.keys import generate_private_key
from protocols.cmp.bodies import ID_IT_CA_CERTS, PkiStatus
from protocols.cmp.config import MacLimits
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.message import decode_message
from protocols.cmp.protection import verify_mac, verify_signature_protection
from tests import cmp_client
from tests.cmp_client import Client, Header, Mac, Signature, read_reply
from tests.cmp_mock import Exchange, MockServer
from tests.unit.protocols.cmp.cmp_vectors import REFERENCE, SECRET, VECTORS, certificate, vector

SUBJECT = x509.Name.from_rfc4514_string("CN=CMP Client Test")
ISSUED = certificate("issued.pem")


def client_signature() -> Signature:
    key = load_pem_private_key((VECTORS / "client.key").read_bytes(), None)
    return Signature(key, certificate("client.pem"))  # type: ignore[arg-type]


def protections() -> list[Mac | Signature]:
    return [Mac(REFERENCE, SECRET), Mac(REFERENCE, SECRET, scheme="pbmac1"), client_signature()]


# -- reading replies: the openssl-made vectors ---------------------------------------------------------


@pytest.mark.parametrize("protection", ["mac", "sig"])
def test_reads_openssl_ip_with_certificate_and_ca_pubs(protection: str) -> None:
    reply = read_reply(vector(f"ir-{protection}.rsp.der"))
    assert (reply.kind, reply.status, reply.fail_info, reply.cert_req_id) == ("ip", PkiStatus.accepted, (), 0)
    assert reply.certificate == ISSUED
    assert reply.ca_pubs == (certificate("root.pem"),)
    sent_with: Mac | Signature = Mac(REFERENCE, SECRET) if protection == "mac" else client_signature()
    cmp_client.check_protection(reply, sent_with, trusted=None if protection == "mac" else certificate("server.pem"))


def test_reads_error_poll_rp_and_p10cr_cp() -> None:
    error = read_reply(vector("error-mac.rsp.der"))
    assert (error.kind, error.status, error.fail_info) == ("error", PkiStatus.rejection, ("badRequest",))
    waiting = read_reply(vector("poll-mac.ip-waiting.der"))
    assert (waiting.status, waiting.certificate) == (PkiStatus.waiting, None)
    poll = read_reply(vector("poll-mac.pollRep.der"))
    assert (poll.kind, poll.check_after, poll.cert_req_id) == ("pollRep", 0, 0)
    assert read_reply(vector("rr-mac.rsp.der")).status is PkiStatus.accepted
    cp = read_reply(vector("p10cr-sig.rsp.der"))
    assert (cp.kind, cp.cert_req_id, cp.certificate) == ("cp", -1, ISSUED)


def test_mac_check_of_a_reply_fails_with_another_secret() -> None:
    reply = read_reply(vector("ir-mac.rsp.der"))
    with pytest.raises(CmpFailure) as refused:
        cmp_client.check_protection(reply, Mac(REFERENCE, b"not-the-secret"))
    assert refused.value.fail_info is FailInfo.badMessageCheck


def test_cert_hash_is_the_one_openssl_sends() -> None:
    sent = decode_message(vector("ir-mac.certConf.der")).body["certConf"][0]
    assert cmp_client.cert_hash(ISSUED) == bytes(sent["certHash"])


# -- building requests: the server's own decoder and checks accept them (CMP-01, CMP-02, CMP-09) ---------


@pytest.mark.parametrize("protection", protections(), ids=["pbm", "pbmac1", "signature"])
def test_ir_protection_and_pop_verify_with_the_servers_checks(protection: Mac | Signature) -> None:
    key = generate_private_key("ec-p256")
    out = Client(protection).ir(key, SUBJECT, ["device.example.com"], implicit_confirm=True)
    message = decode_message(out.der)
    assert (message.body_type, message.transaction_id, message.implicit_confirm) == (
        "ir",
        out.header.transaction_id,
        True,
    )
    if isinstance(protection, Mac):
        assert message.sender_kid == REFERENCE
        verify_mac(message, SECRET, MacLimits())
    else:
        assert message.extra_certs()[0] == protection.certificate
        verify_signature_protection(message, protection.certificate)
    request = message.body["ir"][0]
    assert check_pop(request, key.public_key(), trusted_ra=False).value == "signature"


def test_overrides_break_what_a_test_asks_for() -> None:
    """CMP-01/02/09 inputs: a wrong secret, an unprotected message, a POP by another key."""
    key, other = generate_private_key("ec-p256"), generate_private_key("ec-p256")
    wrong = decode_message(Client(Mac(REFERENCE, b"wrong")).ir(key, SUBJECT).der)
    with pytest.raises(CmpFailure) as refused:
        verify_mac(wrong, SECRET, MacLimits())
    assert refused.value.fail_info is FailInfo.badMessageCheck
    bare = decode_message(Client(None).ir(key, SUBJECT).der)
    assert bare.protection is None and bare.protection_alg is None
    stolen = decode_message(Client(None).ir(key, SUBJECT, pop_key=other).der)
    with pytest.raises(Exception, match=r"(?i)signature"):
        check_pop(stolen.body["ir"][0], key.public_key(), trusted_ra=False)
    header = Header(transaction_id=b"t" * 16, sender_nonce=b"n" * 16, recip_nonce=b"r" * 16, pvno=3)
    fixed = decode_message(Client(None).message("genm", cmp_client.genm_body(), header).der)
    assert (fixed.transaction_id, fixed.sender_nonce, fixed.recip_nonce, fixed.pvno) == (
        b"t" * 16,
        b"n" * 16,
        b"r" * 16,
        3,
    )
    assert fixed.body_type == "genm"


def test_kur_rr_p10cr_and_cert_conf_decode() -> None:
    client = Client(Mac(REFERENCE, SECRET))
    key = generate_private_key("ec-p256")
    kur = decode_message(client.kur(key, ISSUED).der).body["kur"][0]["certReq"]
    control = kur["controls"][0]
    assert str(control["type"]) == cmp_client.ID_REGCTRL_OLD_CERT_ID
    rr = decode_message(client.rr(ISSUED, x509.ReasonFlags.key_compromise).der).body["rr"][0]
    assert int(rr["certDetails"]["serialNumber"]) == ISSUED.serial_number
    assert str(rr["crlEntryDetails"][0]["extnID"]) == cmp_client.REASON_CODE
    csr = x509.load_pem_x509_csr((VECTORS / "p10.csr").read_bytes())
    assert decode_message(client.p10cr(csr).der).body_type == "p10cr"
    request = client.ir(key, SUBJECT)
    reply = read_reply(vector("ir-mac.rsp.der"))
    conf = decode_message(client.cert_conf(request, reply).der)
    assert conf.transaction_id == request.header.transaction_id
    assert conf.recip_nonce == reply.message.sender_nonce and conf.sender_nonce != request.header.sender_nonce
    assert bytes(conf.body["certConf"][0]["certHash"]) == cmp_client.cert_hash(ISSUED)


# -- whole transactions against OpenSSL's mock server ---------------------------------------------------------


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


@pytest.mark.parametrize("protection", [protections()[0], protections()[2]], ids=["pbm", "signature"])
def test_ir_then_cert_conf_against_openssl_mock(mock: MockServer, protection: Mac | Signature) -> None:
    """CMP-14 (client side): the mock validates our protection, and our certConf's certHash,
    transactionID and nonces; our reader checks its ip and pkiconf."""
    client = Client(protection)
    request = client.ir(generate_private_key("ec-p256"), SUBJECT, ["device.example.com"])
    with Exchange(mock.port) as exchange:  # one connection: the mock ends a transaction with its connection
        status, content_type, body = exchange.post(request.der)
        assert (status, content_type) == (200, "application/pkixcmp")
        ip = read_reply(body)
        assert (ip.kind, ip.status, ip.certificate) == ("ip", PkiStatus.accepted, ISSUED), ip.text
        assert ip.message.transaction_id == request.header.transaction_id
        assert ip.message.recip_nonce == request.header.sender_nonce
        cmp_client.check_protection(
            ip, protection, trusted=None if isinstance(protection, Mac) else certificate("server.pem")
        )
        conf = read_reply(exchange.post(client.cert_conf(request, ip).der)[2])
    assert conf.kind == "pkiconf", (conf.fail_info, conf.text)


def test_implicit_confirm_and_other_bodies_against_openssl_mock(mock: MockServer) -> None:
    """Each transaction on its own connection: the mock closes one when its transaction ends."""
    client = Client(Mac(REFERENCE, SECRET))
    key = generate_private_key("ec-p256")
    csr = x509.load_pem_x509_csr((VECTORS / "p10.csr").read_bytes())
    for request, kind in [
        (client.ir(key, SUBJECT, implicit_confirm=True), "ip"),
        (client.cr(key, SUBJECT, implicit_confirm=True), "cp"),
        (client.kur(key, ISSUED, implicit_confirm=True), "kup"),
        (client.p10cr(csr, implicit_confirm=True), "cp"),
        (client.rr(ISSUED, x509.ReasonFlags.superseded), "rp"),
        (client.genm(cmp_client.itav(ID_IT_CA_CERTS)), "genp"),
        (Client(Mac(REFERENCE, b"wrong")).ir(key, SUBJECT), "error"),
    ]:
        with Exchange(mock.port) as exchange:
            reply = read_reply(exchange.post(request.der)[2])
        assert reply.kind == kind, (kind, reply.fail_info, reply.text)
        if kind == "error":
            assert reply.status is PkiStatus.rejection
        else:
            assert reply.status in (None, PkiStatus.accepted), (kind, reply.fail_info, reply.text)
        if kind in ("ip", "cp", "kup"):
            assert reply.message.implicit_confirm and reply.certificate == ISSUED
