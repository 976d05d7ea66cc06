"""Every bad CMP input of issue 13 against `tetra serve`: an error PKIMessage (HTTP 200, RFC 9811)
whose PKIStatusInfo is a rejection with the one failInfo bit RFC 9483 names, and nothing issued
or stored (the store's counts do not move). Catalogue rows CMP-01 to CMP-11."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from protocols.cmp.bodies import PkiStatus
from protocols.cmp.der import octet_string, sequence
from tests import cmp_client
from tests.helpers import self_signed
from tests.integration.cmp_support import CmpServer, cmp_server, mac_client, new_key, signing_client, subject
from tests.integration.est_support import device_certificate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[CmpServer]:
    import shutil

    directory = tmp_path_factory.mktemp("cmp-bad") / "ca"
    shutil.copytree(template_dir, directory)
    yield from cmp_server(directory, directory.parent / "serve.log")


def refused(server: CmpServer, message: cmp_client.Outgoing | bytes, fail_info: str, path: str = "") -> str:
    """The error reply with exactly ``fail_info``; nothing stored. Its text."""
    before = server.counts()
    reply = server.exchange(message, path)
    assert (reply.kind, reply.status, reply.fail_info) == ("error", PkiStatus.rejection, (fail_info,)), reply.text
    assert reply.text
    assert server.counts() == before
    return reply.text


def confirmed(server: CmpServer, client: cmp_client.Client, name: str) -> tuple[x509.Certificate, object]:
    key = new_key()
    request = client.ir(key, subject(name))
    reply = server.exchange(request)
    assert reply.certificate is not None, reply.text
    assert server.exchange(client.cert_conf(request, reply)).kind == "pkiconf"
    return reply.certificate, key


def test_cmp01_unprotected_requests_are_refused(server: CmpServer) -> None:
    client = cmp_client.Client(None)
    for message in (client.ir(new_key(), subject("bare.example")), client.genm()):
        assert "no protection" in refused(server, message, "badMessageCheck")


def test_cmp02_wrong_secret(server: CmpServer) -> None:
    client = mac_client(secret=b"not-the-shared-secret")
    assert "MAC" in refused(server, client.ir(new_key(), subject("wrong-secret.example")), "badMessageCheck")


def test_cmp02_unknown_sender_reference(server: CmpServer) -> None:
    client = mac_client(reference=b"nobody-knows-me")
    refused(server, client.ir(new_key(), subject("unknown-ref.example")), "signerNotTrusted")


def test_cmp03_pbm_iterations_under_the_floor_and_over_the_ceiling(server: CmpServer) -> None:
    """Refused before any key derivation (the forged MAC value is never compared)."""
    for iterations in (1, 499, 2**31 - 1):
        client = mac_client(iterations=iterations)
        header = client.header()
        content = cmp_client.cert_req_body("ir", cmp_client.cert_req_msg(new_key(), subject("i.example")))
        message = cmp_client.protect(header, content, client.protection, forged=b"\x00" * 20)
        refused(server, message, "badAlg")


def test_pbmac1_is_accepted(server: CmpServer) -> None:
    """RFC 9481 §6.1.1: PBMAC1 (PBKDF2-SHA256, HMAC-SHA256), answered with the same MAC."""
    client = mac_client(scheme="pbmac1", iterations=1000)
    key = new_key()
    reply = server.exchange(client.ir(key, subject("pbmac1.example"), implicit_confirm=True))
    assert reply.certificate is not None and reply.certificate.public_key() == key.public_key(), reply.text
    cmp_client.check_protection(reply, client.protection)


def test_cmp04_untrusted_expired_and_misnamed_signers(server: CmpServer) -> None:
    """A self-signed certificate, one of a CA nobody configured, an expired one from the maker,
    and a sender name that is not the certificate's subject."""
    key, stranger = self_signed("stranger", key_spec="ec-p256")
    refused(server, signing_client(stranger, key).ir(new_key(), subject("s.example")), "signerNotTrusted")
    other_ca_key, other_ca = self_signed("Other Maker CA", key_spec="ec-p256", ca=True)
    device, device_key = device_certificate(other_ca, other_ca_key, "SN-OTHER")
    refused(server, signing_client(device, device_key).ir(new_key(), subject("o.example")), "signerNotTrusted")
    expired, expired_key = device_certificate(*server.maker, "SN-EXPIRED", expired=True)
    refused(server, signing_client(expired, expired_key).ir(new_key(), subject("e.example")), "signerNotTrusted")
    good, good_key = device_certificate(*server.maker, "SN-MISNAMED")
    client = signing_client(good, good_key)
    header = client.header(sender=subject("someone else"))
    message = client.enrol("ir", new_key(), subject("m.example"), header=header)
    assert "sender" in refused(server, message, "badMessageCheck")


def test_signature_by_a_revoked_certificate(server: CmpServer) -> None:
    """CMP-10: a kur (and a cr) authenticated by a certificate this CA revoked: certRevoked."""
    certificate, key = confirmed(server, mac_client(), "revoked-signer.example")
    client = signing_client(certificate, key)
    assert server.exchange(client.rr(certificate)).status is PkiStatus.accepted
    refused(server, client.kur(new_key(), certificate), "certRevoked")
    refused(server, client.cr(new_key(), subject("after-revocation.example")), "certRevoked")


def test_cmp10_kur_by_mac_or_for_another_certificate(server: CmpServer) -> None:
    mine, key = confirmed(server, mac_client(), "kur-owner.example")
    theirs, _ = confirmed(server, mac_client(), "kur-other.example")
    assert "signed by the certificate" in refused(server, mac_client().kur(new_key(), mine), "notAuthorized")
    client = signing_client(mine, key)
    message = client.enrol("kur", new_key(), mine.subject, controls=[cmp_client.old_cert_id(theirs)])
    refused(server, message, "badCertId")


def test_cmp05_replayed_and_reused_transaction_ids(server: CmpServer) -> None:
    """The same message twice (same transactionID and senderNonce): transactionIdInUse; the same
    transactionID with a fresh nonce for another key: transactionIdInUse; a short one: badRequest."""
    client = mac_client()
    key = new_key()
    request = client.ir(key, subject("replay.example"), implicit_confirm=True)
    assert server.exchange(request).certificate is not None
    assert "received before" in refused(server, request.der, "transactionIdInUse")
    other = client.enrol("ir", new_key(), subject("replay.example"), header=request.header.fresh())
    assert "another request" in refused(server, other, "transactionIdInUse")
    short = client.enrol("ir", new_key(), subject("short.example"), header=client.header(transaction_id=b"\x01" * 8))
    refused(server, short, "badRequest")


def test_cmp06_nonces(server: CmpServer) -> None:
    """A senderNonce too short; a certConf whose recipNonce is not our last senderNonce."""
    client = mac_client()
    short = client.enrol("ir", new_key(), subject("n.example"), header=client.header(sender_nonce=b"\x02" * 8))
    refused(server, short, "badSenderNonce")
    key = new_key()
    request = client.ir(key, subject("nonce.example"))
    reply = server.exchange(request)
    assert reply.certificate is not None
    header = dataclasses.replace(client.follow_up(request, reply), recip_nonce=b"\x03" * 16)
    conf = client.message("certConf", cmp_client.cert_conf_body(reply.certificate), header)
    refused(server, conf, "badRecipientNonce")
    assert server.exchange(client.cert_conf(request, reply)).kind == "pkiconf"


def test_cmp07_message_time_far_off(server: CmpServer) -> None:
    client = mac_client()
    for skew in (dt.timedelta(hours=-2), dt.timedelta(hours=2)):
        header = client.header(message_time=dt.datetime.now(dt.UTC) + skew)
        refused(server, client.enrol("ir", new_key(), subject("t.example"), header=header), "badTime")


def test_malformed_der_and_a_body_over_the_limit(server: CmpServer) -> None:
    """Garbage and a truncated message: badDataFormat, unprotected; over [cmp] max_body (16 KiB
    here) but under the server's cap: badDataFormat; over the server's cap: HTTP 413."""
    refused(server, b"\x30\x03\x02\x01", "badDataFormat")
    refused(server, b"not DER at all", "badDataFormat")
    good = mac_client().genm().der
    refused(server, good[:-5], "badDataFormat")
    padding = cmp_client.extension("1.2.3.4", octet_string(b"x" * 20_000))
    big = mac_client().enrol("ir", new_key(), subject("big.example"), extensions=[padding])
    assert "limit" in refused(server, big, "badDataFormat")
    before = server.counts()
    assert server.http(b"\x30" + b"\x00" * (2 * 1024 * 1024)).status == 413
    assert server.counts() == before


def test_unsupported_body_types(server: CmpServer) -> None:
    """Well-formed bodies only a server sends (pkiconf) or this CA does not offer (krr, ccr):
    badRequest."""
    client = mac_client()
    request = cmp_client.cert_req_msg(new_key(), subject("u.example"))
    for kind, content in (("pkiconf", b"\x05\x00"), ("krr", sequence(request)), ("ccr", sequence(request))):
        message = client.message(kind, cmp_client.body(kind, content))
        assert "not a request this CA answers" in refused(server, message, "badRequest")


def test_cmp09_proof_of_possession(server: CmpServer) -> None:
    """No POP, a POP by another key, raVerified from a sender that is no RA: badPOP."""
    client = mac_client()
    refused(server, client.enrol("ir", new_key(), subject("p.example"), with_pop=False), "badPOP")
    refused(server, client.enrol("ir", new_key(), subject("p.example"), pop_key=new_key()), "badPOP")
    refused(server, client.enrol("ir", new_key(), subject("p.example"), pop=cmp_client.RA_VERIFIED), "badPOP")


def test_p10cr_with_a_bad_csr_signature(server: CmpServer) -> None:
    key = new_key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject("bad-csr.example")).sign(key, hashes.SHA256())
    der = bytearray(csr.public_bytes(Encoding.DER))
    der[-1] ^= 0x01  # the last byte of the signature
    assert "signature" in refused(server, mac_client().p10cr(bytes(der)), "badPOP")


def test_cert_conf_with_a_wrong_cert_hash(server: CmpServer) -> None:
    client = mac_client()
    request = client.ir(new_key(), subject("hash.example"))
    reply = server.exchange(request)
    assert reply.certificate is not None
    wrong = client.cert_conf(request, reply, digest=b"\x00" * 32)
    assert "certHash" in refused(server, wrong, "badCertId")
    assert server.exchange(client.cert_conf(request, reply)).kind == "pkiconf"


def test_cmp11_rr_for_someone_elses_certificate(server: CmpServer) -> None:
    """Signed by one certificate for another; MAC'd with a secret of another profile."""
    first, first_key = confirmed(server, mac_client(), "rr-first.example")
    second, _ = confirmed(server, mac_client(), "rr-second.example")
    refused(server, signing_client(first, first_key).rr(second), "notAuthorized")
    held = mac_client(b"held-ref")
    refused(server, held.rr(second), "notAuthorized")
    assert server.status_of(second) == "issued"


def test_a_secret_enrols_under_its_own_profile_only(server: CmpServer) -> None:
    held = mac_client(b"held-ref")
    assert "held" in refused(server, held.ir(new_key(), subject("cross.example")), "notAuthorized")


def test_http_level_refusals(server: CmpServer) -> None:
    """What is not a CMP request gets HTTP: another content type 415, an unknown profile 404."""
    body = mac_client().genm().der
    assert server.http(body, content_type="application/octet-stream").status == 415
    assert server.http(body, "/p/no-such-profile").status == 404
