"""Every bad SCEP input of issue 12 (but the webhook's, brief B) against `tetra serve`: a CertRep
FAILURE with the failInfo RFC 8894 names, or an HTTP 4xx for what is not a SCEP message; and in
each case nothing issued or stored (the store's counts do not move)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import scep_client
from tests.integration.scep_support import STATIC, ScepServer, enrol, module_server, running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[ScepServer]:
    yield from module_server(tmp_path_factory, template_dir)


def refused(server: ScepServer, message: scep_client.Message, requester: scep_client.Requester, fail_info: str) -> str:
    """The CertRep FAILURE with ``fail_info``; the certificates and requests tables did not grow."""
    before = server.counts()
    rep = server.exchange(message, requester)
    assert (rep.status, rep.fail_info) == (scep_client.FAILURE, fail_info), rep.fail_info_text
    assert rep.fail_info_text
    assert server.counts() == before
    return rep.fail_info_text


def http_refused(server: ScepServer, method: str, query: str, status: int, body: bytes | None = None) -> None:
    """An HTTP ``status`` in plain text; nothing stored."""
    before = server.counts()
    reply = server.http(method, f"{server.url}?{query}", body)
    assert reply.status == status, (query[:80], reply.body[:200])
    assert reply.headers["content-type"].startswith("text/plain")
    assert server.counts() == before


def test_wrong_challenge(server: ScepServer) -> None:
    requester = scep_client.Requester.fresh()
    message = scep_client.pkcs_req(requester, server.ra_certificate(), "x.example.com", challenge="not-the-secret")
    assert "challenge" in refused(server, message, requester, scep_client.BAD_REQUEST)


def test_no_challenge(server: ScepServer) -> None:
    requester = scep_client.Requester.fresh()
    message = scep_client.pkcs_req(requester, server.ra_certificate(), "x.example.com")
    refused(server, message, requester, scep_client.BAD_REQUEST)


def test_used_one_time_challenge(server: ScepServer) -> None:
    challenge = server.one_time_challenge()
    _, first = enrol(server, "first-use.example.com", challenge=challenge)
    assert first.status == scep_client.SUCCESS
    requester = scep_client.Requester.fresh()
    again = scep_client.pkcs_req(requester, server.ra_certificate(), "second-use.example.com", challenge=challenge)
    refused(server, again, requester, scep_client.BAD_REQUEST)


def test_challenge_made_for_another_name(server: ScepServer) -> None:
    """SCEP-15."""
    challenge = server.one_time_challenge(identities=("printer.example.com",))
    requester = scep_client.Requester.fresh()
    message = scep_client.pkcs_req(
        requester, server.ra_certificate(), "laptop.example.com", ["laptop.example.com"], challenge=challenge
    )
    assert "other names" in refused(server, message, requester, scep_client.BAD_REQUEST)


def test_tampered_signature(server: ScepServer) -> None:
    """The signature is the last field of the message: one flipped bit is badMessageCheck."""
    requester = scep_client.Requester.fresh()
    message = scep_client.pkcs_req(requester, server.ra_certificate(), "t.example.com", challenge=STATIC)
    tampered = bytearray(message.der)
    tampered[-5] ^= 0x01
    message.der = bytes(tampered)
    refused(server, message, requester, scep_client.BAD_MESSAGE_CHECK)


def test_signer_without_the_csr_key(server: ScepServer) -> None:
    """SCEP-06: a PKCSReq signed by a certificate that does not hold the CSR's key."""
    signer = scep_client.Requester.fresh()
    other_key = scep_client.new_key()
    csr = scep_client.build_csr(other_key, "k.example.com", challenge=STATIC)
    message = scep_client.pki_message(
        scep_client.PKCS_REQ,
        csr,
        signer,
        server.ra_certificate(),
        transaction=scep_client.transaction_id(other_key.public_key()),
    )
    refused(server, message, signer, scep_client.BAD_MESSAGE_CHECK)


def test_expired_signer(server: ScepServer) -> None:
    """SCEP-06: a PKCSReq signed by an expired (self-signed) certificate is badMessageCheck."""
    key = scep_client.new_key()
    old = scep_client.self_signed(key, "old", now=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
    requester = scep_client.Requester(key, old)
    message = scep_client.pkcs_req(requester, server.ra_certificate(), "old.example.com", challenge=STATIC)
    assert "expired" in refused(server, message, requester, scep_client.BAD_MESSAGE_CHECK)


def test_envelopes_the_ra_cannot_open_get_one_answer(server: ScepServer) -> None:
    """SCEP-09: an envelope to another certificate and one whose content is garbled get the same
    FAILURE (badMessageCheck, the same text): no oracle on what went wrong. SCEP-11: only the RA
    key decrypts (an envelope to any other certificate is not opened)."""
    requester = scep_client.Requester.fresh()
    stranger = scep_client.Requester.fresh("not-the-ra").certificate
    to_other = scep_client.pkcs_req(requester, stranger, "e.example.com", challenge=STATIC)
    first = refused(server, to_other, requester, scep_client.BAD_MESSAGE_CHECK)
    garbled = scep_client.pkcs_req(
        requester, server.ra_certificate(), "e.example.com", challenge=STATIC, bad_padding=True
    )
    assert refused(server, garbled, requester, scep_client.BAD_MESSAGE_CHECK) == first


@pytest.mark.parametrize("cipher", ["des", "des3"])
def test_des_when_the_profile_forbids_it(server: ScepServer, cipher: str) -> None:
    """SCEP-02: DES and 3DES envelopes outside a legacy profile are badAlg."""
    requester = scep_client.Requester.fresh()
    message = scep_client.pkcs_req(requester, server.ra_certificate(), "d.example.com", challenge=STATIC, cipher=cipher)
    refused(server, message, requester, scep_client.BAD_ALG)


@pytest.mark.parametrize("digest", ["sha1", "md5"])
def test_weak_digest_when_the_profile_forbids_it(server: ScepServer, digest: str) -> None:
    """SCEP-02: SHA-1 and MD5 signatures outside a legacy profile are badAlg."""
    requester = scep_client.Requester.fresh()
    message = scep_client.pkcs_req(requester, server.ra_certificate(), "w.example.com", challenge=STATIC, digest=digest)
    refused(server, message, requester, scep_client.BAD_ALG)


def test_weak_csr_signature_when_the_profile_forbids_it(server: ScepServer) -> None:
    requester = scep_client.Requester.fresh()
    message = scep_client.pkcs_req(
        requester, server.ra_certificate(), "c.example.com", challenge=STATIC, csr_digest="sha1"
    )
    refused(server, message, requester, scep_client.BAD_ALG)


def test_transaction_id_not_of_the_key(server: ScepServer) -> None:
    requester = scep_client.Requester.fresh()
    message = scep_client.pkcs_req(
        requester, server.ra_certificate(), "tid.example.com", challenge=STATIC, transaction="0123456789ABCDEF"
    )
    assert "transactionID" in refused(server, message, requester, scep_client.BAD_REQUEST)


def test_unknown_transaction_in_cert_poll(server: ScepServer) -> None:
    requester = scep_client.Requester.fresh()
    message = scep_client.cert_poll(
        requester, server.ra_certificate(), server.issuing_ca().subject, requester.certificate.subject
    )
    refused(server, message, requester, scep_client.BAD_CERT_ID)


@pytest.mark.parametrize(
    "message",
    ["%%%", "bm90IGEgcGtpIG1lc3NhZ2U=", "MIIB" + "A" * 10, base64.b64encode(b"\x30\x03\x02\x01\x00").decode()],
)
def test_garbage_in_message_is_http_400(server: ScepServer, message: str) -> None:
    """SCEP-22: not base64, base64 of no CMS, a cut-off DER: HTTP 400 in plain text."""
    http_refused(server, "GET", f"operation=PKIOperation&message={message}", 400)


def test_body_over_the_limit_is_413(server: ScepServer) -> None:
    """SCEP-22: a POST body over [scep] max_body (64 KiB here), and over the server's 1 MiB cap."""
    for size in (70_000, 2_000_000):
        http_refused(server, "POST", "operation=PKIOperation", 413, b"\x30" * size)


def test_unknown_or_missing_operation_is_400(server: ScepServer) -> None:
    """SCEP-22."""
    for query in ("operation=GetCRL", "operation=", "nothing=1"):
        http_refused(server, "GET", query, 400)


def test_a_cert_rep_sent_to_the_ca(server: ScepServer) -> None:
    """A message type only a CA sends is badRequest."""
    requester = scep_client.Requester.fresh()
    message = scep_client.pki_message(scep_client.CERT_REP, b"nothing", requester, server.ra_certificate())
    refused(server, message, requester, scep_client.BAD_REQUEST)


def test_wrong_challenges_brake_the_source(template_dir: Path, tmp_path: Path) -> None:
    """SCEP-03: after challenge_failures (3 here) wrong challenges from one address, even the right
    one is refused (badRequest, "too many") until the window passes; nothing is issued."""
    import shutil

    shutil.copytree(template_dir, tmp_path / "ca")
    with running_server(tmp_path / "ca", tmp_path, {"TETRA_SCEP__CHALLENGE_FAILURES": "3"}) as server:
        before = server.counts()
        for _ in range(3):
            _, rep = enrol(server, "guess.example.com", challenge="guess-guess")
            assert rep.fail_info == scep_client.BAD_REQUEST
        _, rep = enrol(server, "guess.example.com")
        assert rep.fail_info == scep_client.BAD_REQUEST and "too many" in (rep.fail_info_text or "")
        assert server.counts() == before
