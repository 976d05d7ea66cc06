"""SCEP enrolment beyond the first PKCSReq, against `tetra serve`: one-time challenges bound to
names (SCEP-15), RenewalReq (SCEP-07), the same transactionID again (SCEP-17), and PENDING with
CertPoll until an operator approves or rejects (SCEP-14)."""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests import scep_client
from tests.integration.scep_support import HELD, STATIC, ScepServer, check_issued, enrol, module_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[ScepServer]:
    yield from module_server(tmp_path_factory, template_dir)


def assert_failure(rep: scep_client.CertRep, fail_info: str) -> None:
    assert (rep.status, rep.fail_info) == (scep_client.FAILURE, fail_info), rep.fail_info_text
    assert rep.fail_info_text


def test_one_time_challenge_enrols_once(server: ScepServer, tmp_path: Path) -> None:
    """SCEP-03, SEC-02: a one-time challenge is spent by its first use; a second PKCSReq with
    it (another key, another transaction) is badRequest and issues nothing."""
    challenge = server.one_time_challenge()
    requester, rep = enrol(server, "once.example.com", challenge=challenge)
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text
    check_issued(server, tmp_path, rep.certificate, requester, ["once.example.com"])
    before = server.counts()
    _, again = enrol(server, "twice.example.com", challenge=challenge)
    assert_failure(again, scep_client.BAD_REQUEST)
    assert server.counts() == before


def test_one_time_challenge_bound_to_names(server: ScepServer) -> None:
    """SCEP-15: a challenge made for a device's name enrols that name only; asked for another
    name it is refused (badRequest), and nothing is issued."""
    bound = server.one_time_challenge(identities=("bound.example.com",))
    _, rep = enrol(server, "bound.example.com", challenge=bound)
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text
    other = server.one_time_challenge(identities=("dns:mine.example.com",))
    before = server.counts()
    _, rep = enrol(server, "theirs.example.com", challenge=other)
    assert_failure(rep, scep_client.BAD_REQUEST)
    assert "other names" in (rep.fail_info_text or "")
    assert server.counts() == before


def test_one_time_challenge_for_another_profile_is_refused(server: ScepServer) -> None:
    challenge = server.one_time_challenge(profile="held")
    before = server.counts()
    _, rep = enrol(server, "wrongprofile.example.com", challenge=challenge)
    assert_failure(rep, scep_client.BAD_REQUEST)
    assert server.counts() == before


def test_same_transaction_id_returns_the_same_certificate(server: ScepServer) -> None:
    """SCEP-17: a client that lost its CertRep sends the PKCSReq again (same transactionID, same
    key): the same certificate comes back, and no second one is issued."""
    requester = scep_client.Requester.fresh("again.example.com")
    message = scep_client.pkcs_req(
        requester, server.ra_certificate(), "again.example.com", ["again.example.com"], challenge=STATIC
    )
    first = server.exchange(message, requester)
    assert first.status == scep_client.SUCCESS, first.fail_info_text
    before = server.counts()
    resent = scep_client.pkcs_req(
        requester, server.ra_certificate(), "again.example.com", ["again.example.com"], challenge="ignored-now"
    )
    second = server.exchange(resent, requester)
    assert second.status == scep_client.SUCCESS, second.fail_info_text
    assert second.certificate == first.certificate
    assert server.counts() == before


def test_same_transaction_id_with_another_key_is_refused(server: ScepServer) -> None:
    """SCEP-17: the transactionID of an issued enrolment, sent with another key, is badRequest."""
    requester, first = enrol(server, "taken.example.com")
    assert first.status == scep_client.SUCCESS
    intruder = scep_client.Requester.fresh("taken.example.com")
    before = server.counts()
    message = scep_client.pkcs_req(
        intruder,
        server.ra_certificate(),
        "taken.example.com",
        ["taken.example.com"],
        challenge=STATIC,
        transaction=requester.transaction_id(),
    )
    assert_failure(server.exchange(message, intruder), scep_client.BAD_REQUEST)
    assert server.counts() == before


def test_an_abandoned_claim_does_not_block_its_transaction_id(server: ScepServer) -> None:
    """SCEP-17: a claim a crash left behind (no certificate, no pending request, older than five
    minutes) is forgotten when the client sends its PKCSReq again, which then succeeds."""
    requester = scep_client.Requester.fresh("abandoned.example.com")
    spki = requester.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    server.write_sqlite(
        "INSERT INTO scep_transactions (profile, transaction_id, spki_sha256, requester, created_at)"
        " VALUES ('device', ?, ?, 'crashed', '2020-01-01 00:00:00.000000')",
        (requester.transaction_id(), hashlib.sha256(spki).hexdigest()),
    )
    _, rep = enrol(server, "abandoned.example.com", requester=requester)
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text


def test_concurrent_twins_issue_one_certificate(server: ScepServer) -> None:
    """SCEP-17: the same PKCSReq sent eight times at once is issued once; every answer is that
    certificate or PENDING (a twin still issuing), and a CertPoll then returns it."""
    requester = scep_client.Requester.fresh("twins.example.com")
    message = scep_client.pkcs_req(
        requester, server.ra_certificate(), "twins.example.com", ["twins.example.com"], challenge=STATIC
    )
    before = server.counts()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: server.exchange(message, requester), range(8)))
    assert server.counts()[0] == before[0] + 1
    issued = {r.certificate for r in replies if r.status == scep_client.SUCCESS}
    assert len(issued) == 1
    assert all(r.status in (scep_client.SUCCESS, scep_client.PENDING) for r in replies)
    poll = scep_client.cert_poll(
        requester, server.ra_certificate(), server.issuing_ca().subject, requester.certificate.subject
    )
    assert server.exchange(poll, requester).certificate in issued


def test_renewal_signed_by_the_certificate(server: ScepServer, tmp_path: Path) -> None:
    """SCEP-07: RenewalReq signed with the certificate being renewed, no challenge: a new key
    (rekey) and then the same key again (renew) both succeed."""
    requester, rep = enrol(server, "renew.example.com")
    current = scep_client.Requester(requester.key, rep.certificate)
    # the same key: its transactionID is the PKCSReq's, yet this is a new certificate, not that one
    same = scep_client.renewal_req(
        current, server.ra_certificate(), requester.key, "renew.example.com", ["renew.example.com"]
    )
    renewed_same_key = server.exchange(same, current)
    assert renewed_same_key.status == scep_client.SUCCESS, renewed_same_key.fail_info_text
    assert renewed_same_key.certificate.serial_number != rep.certificate.serial_number
    assert renewed_same_key.certificate.public_key() == requester.key.public_key()
    assert server.exchange(same, current).certificate == renewed_same_key.certificate  # a retry: the same
    new_key = scep_client.new_key()
    message = scep_client.renewal_req(
        current, server.ra_certificate(), new_key, "renew.example.com", ["renew.example.com"]
    )
    renewed = server.exchange(message, current)
    assert renewed.status == scep_client.SUCCESS, renewed.fail_info_text
    check_issued(
        server,
        tmp_path,
        renewed.certificate,
        scep_client.Requester(new_key, renewed.certificate),
        ["renew.example.com"],
    )
    assert renewed.certificate.serial_number != rep.certificate.serial_number
    again = scep_client.Requester(new_key, renewed.certificate)
    same_key = scep_client.renewal_req(
        again, server.ra_certificate(), new_key, "renew.example.com", ["renew.example.com"]
    )
    # renewing the renewed certificate with its key: a renewal of its own, not the rekey's row again
    next_renewal = server.exchange(same_key, again)
    assert next_renewal.status == scep_client.SUCCESS, next_renewal.fail_info_text
    assert next_renewal.certificate.serial_number != renewed.certificate.serial_number
    # a CSR subject with an attribute the profile drops (C=, as micromdm's scepclient sends) still
    # names the same subject: what counts is the subject the profile makes of it
    third_key = scep_client.new_key()
    with_country = scep_client.renewal_req(
        again, server.ra_certificate(), third_key, "renew.example.com", ["renew.example.com"], country="US"
    )
    third = server.exchange(with_country, again)
    assert third.status == scep_client.SUCCESS, third.fail_info_text
    assert third.certificate.subject == renewed.certificate.subject


def test_renewal_refusals(server: ScepServer) -> None:
    """SCEP-07: a RenewalReq signed by a certificate we did not issue, by a revoked one, or asking
    for another subject is badRequest, and nothing is issued."""
    stranger = scep_client.Requester.fresh("stranger.example.com")
    message = scep_client.renewal_req(stranger, server.ra_certificate(), scep_client.new_key(), "stranger.example.com")
    before = server.counts()
    assert_failure(server.exchange(message, stranger), scep_client.BAD_REQUEST)

    requester, rep = enrol(server, "subject.example.com")
    current = scep_client.Requester(requester.key, rep.certificate)
    before = server.counts()
    other_subject = scep_client.renewal_req(
        current, server.ra_certificate(), scep_client.new_key(), "someone-else.example.com"
    )
    assert_failure(server.exchange(other_subject, current), scep_client.BAD_REQUEST)

    server.cli("revoke", f"{rep.certificate.serial_number:x}", "--reason", "keyCompromise")
    revoked = scep_client.renewal_req(current, server.ra_certificate(), scep_client.new_key(), "subject.example.com")
    assert_failure(server.exchange(revoked, current), scep_client.BAD_REQUEST)
    assert server.counts()[0] == before[0]


def _poll(server: ScepServer, requester: scep_client.Requester) -> scep_client.CertRep:
    message = scep_client.cert_poll(
        requester, server.ra_certificate(), server.issuing_ca().subject, requester.certificate.subject
    )
    return server.exchange(message, requester, "/scep/held/pkiclient.exe")


def test_pending_then_approved(server: ScepServer, tmp_path: Path) -> None:
    """SCEP-14: a profile with approval answers PENDING; CertPoll says PENDING until
    `tetra requests approve ID`, then SUCCESS with the certificate."""
    requester, rep = enrol(server, "held.example.com", challenge=HELD, path="/scep/held/pkiclient.exe")
    assert rep.status == scep_client.PENDING
    assert _poll(server, requester).status == scep_client.PENDING
    (request_id,) = server.pending_request_ids()
    # the PKCSReq sent again while it waits is the same request, not a second one
    _, again = enrol(server, "held.example.com", challenge=HELD, path="/scep/held/pkiclient.exe", requester=requester)
    assert again.status == scep_client.PENDING and server.pending_request_ids() == [request_id]
    server.cli("requests", "approve", str(request_id))
    got = _poll(server, requester)
    assert got.status == scep_client.SUCCESS, got.fail_info_text
    check_issued(server, tmp_path, got.certificate, requester, ["held.example.com"])


def test_pending_then_rejected(server: ScepServer) -> None:
    """SCEP-14: after `tetra requests reject ID` the poll is FAILURE badRequest."""
    requester, rep = enrol(server, "nope.example.com", challenge=HELD, path="/scep/held/pkiclient.exe")
    assert rep.status == scep_client.PENDING
    (request_id,) = server.pending_request_ids()
    server.cli("requests", "reject", str(request_id), "--note", "not ours")
    assert_failure(_poll(server, requester), scep_client.BAD_REQUEST)


def test_cert_poll_for_an_unknown_transaction_is_bad_cert_id(server: ScepServer) -> None:
    stranger = scep_client.Requester.fresh("ghost.example.com")
    assert_failure(_poll(server, stranger), scep_client.BAD_CERT_ID)
