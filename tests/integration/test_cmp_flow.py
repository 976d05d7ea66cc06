"""CMP enrolments against `tetra serve`, driven by the in-process client (tests/cmp_client.py),
on SQLite and PostgreSQL: what each body gets, what the store keeps, and the transaction rules
(CMP-06, CMP-13) that only a server with state can break. Every certificate is checked against
the CA and linted; replies are checked as the client would (MAC with the same secret, or the
CMP signing certificate's signature)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.der import encoder as der_encoder

from ca.store.migrate import upgrade
from protocols.cmp.bodies import PkiStatus
from protocols.cmp.message import decode_message
from tests import cmp_client
from tests.conftest import fresh_postgres_database
from tests.integration.cmp_support import (
    CONFIRM_WAIT,
    HELD_REFERENCE,
    CmpServer,
    cmp_server,
    mac_client,
    new_key,
    signing_client,
    subject,
)
from tests.integration.est_support import device_certificate
from tests.pkilint_check import assert_certificate_lints_clean

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, template_dir: Path
) -> Iterator[CmpServer]:
    """One server per store for the module (each test enrols its own names)."""
    directory = tmp_path_factory.mktemp("cmp") / "ca"
    shutil.copytree(template_dir, directory)
    if request.param == "sqlite":
        yield from cmp_server(directory, directory.parent / "serve.log")
        return
    with fresh_postgres_database() as url:
        upgrade(url)
        yield from cmp_server(directory, directory.parent / "serve.log", url)


def issued(server: CmpServer, reply: cmp_client.Reply, key: object) -> x509.Certificate:
    """The certificate of an accepted ip/cp/kup: for ``key``, issued by the CA, lint-clean."""
    assert reply.status is PkiStatus.accepted, (reply.kind, reply.fail_info, reply.text)
    certificate = reply.certificate
    assert certificate is not None
    assert certificate.public_key() == key.public_key()  # type: ignore[attr-defined]
    issuing = x509.load_pem_x509_certificate((server.ca_dir / "ca" / "issuing-ca.pem").read_bytes())
    certificate.verify_directly_issued_by(issuing)
    assert_certificate_lints_clean(certificate.public_bytes(Encoding.DER))
    return certificate


def enrol(server: CmpServer, client: cmp_client.Client, name: str) -> tuple[x509.Certificate, object]:
    """ir, ip, certConf, pkiconf: a confirmed certificate and its key."""
    key = new_key()
    request = client.ir(key, subject(name))
    reply = server.exchange(request)
    cmp_client.check_protection(reply, client.protection, trusted=server.ra)
    certificate = issued(server, reply, key)
    confirmed = server.exchange(client.cert_conf(request, reply))
    assert confirmed.kind == "pkiconf", (confirmed.fail_info, confirmed.text)
    return certificate, key


def test_ir_with_mac_then_cr_kur_rr_signed_by_what_was_issued(server: CmpServer) -> None:
    """The lifecycle of RFC 9483 §4.1-4.2 on one device: MAC ir (roots in caPubs), then the
    issued certificate signs a cr, a kur for a new key (the old one still valid until revoked),
    and an rr of the updated certificate with a reason."""
    mac = mac_client()
    key = new_key()
    request = mac.ir(key, subject("cmp-flow.example"))
    reply = server.exchange(request)
    cmp_client.check_protection(reply, mac.protection)
    first = issued(server, reply, key)
    assert reply.ca_pubs == (server.root,)
    assert server.exchange(mac.cert_conf(request, reply)).kind == "pkiconf"

    signed = signing_client(first, key)
    second, _ = enrol_cr(server, signed, "cmp-flow-second.example")
    assert second.serial_number != first.serial_number

    new = new_key()
    kur = signed.kur(new, first)
    updated_reply = server.exchange(kur)
    assert updated_reply.kind == "kup"
    cmp_client.check_protection(updated_reply, signed.protection, trusted=server.ra)
    updated = issued(server, updated_reply, new)
    assert updated.subject == first.subject
    assert server.exchange(signed.cert_conf(kur, updated_reply)).kind == "pkiconf"

    revoker = signing_client(updated, new)
    rp = server.exchange(revoker.rr(updated, x509.ReasonFlags.superseded))
    assert (rp.kind, rp.status) == ("rp", PkiStatus.accepted), (rp.fail_info, rp.text)
    assert server.status_of(updated) == "revoked"
    assert server.status_of(first) == "issued"


def enrol_cr(server: CmpServer, client: cmp_client.Client, name: str) -> tuple[x509.Certificate, object]:
    key = new_key()
    request = client.cr(key, subject(name))
    reply = server.exchange(request)
    assert reply.kind == "cp"
    cmp_client.check_protection(reply, client.protection, trusted=server.ra)
    certificate = issued(server, reply, key)
    assert server.exchange(client.cert_conf(request, reply)).kind == "pkiconf"
    return certificate, key


def test_cmp13_the_same_ir_again_gets_the_same_certificate(server: CmpServer) -> None:
    """CMP-13: an ir re-sent under its transactionID with a fresh senderNonce (the client lost
    the ip) gets the same certificate, and no second one is issued."""
    mac = mac_client()
    key = new_key()
    request = mac.ir(key, subject("cmp13.example"))
    first = issued(server, server.exchange(request), key)
    before = server.counts()
    body = der_encoder.encode(decode_message(request.der).body)
    again = mac.message("ir", body, request.header.fresh())
    second = server.exchange(again)
    assert second.certificate == first
    assert server.counts() == before


def test_implicit_confirm_granted_and_no_certconf_needed(server: CmpServer) -> None:
    """implicitConfirm asked and granted (the reply says so): the transaction is done, and the
    certificate outlives the confirmation time."""
    mac = mac_client()
    key = new_key()
    reply = server.exchange(mac.ir(key, subject("implicit.example"), implicit_confirm=True))
    certificate = issued(server, reply, key)
    assert reply.message.implicit_confirm
    time.sleep(CONFIRM_WAIT + 1.5)
    assert server.status_of(certificate) == "issued"


def test_a_certificate_never_confirmed_is_revoked(server: CmpServer) -> None:
    """RFC 9483 §4.1.1: no certConf within confirm_wait (and no implicitConfirm): revoked, and a
    late certConf is refused."""
    mac = mac_client()
    key = new_key()
    request = mac.ir(key, subject("unconfirmed.example"))
    reply = server.exchange(request)
    certificate = issued(server, reply, key)
    deadline = time.monotonic() + CONFIRM_WAIT + 10
    while server.status_of(certificate) != "revoked" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert server.status_of(certificate) == "revoked"
    late = server.exchange(mac.cert_conf(request, reply))
    assert (late.kind, late.fail_info) == ("error", ("certRevoked",)), late.text


def test_a_rejecting_certconf_revokes_the_certificate(server: CmpServer) -> None:
    mac = mac_client()
    key = new_key()
    request = mac.ir(key, subject("rejected.example"))
    reply = server.exchange(request)
    certificate = issued(server, reply, key)
    answer = server.exchange(mac.cert_conf(request, reply, rejected="wrong subject"))
    assert answer.kind == "pkiconf", answer.text
    assert server.status_of(certificate) == "revoked"


def test_delayed_delivery_by_polling_after_approval(server: CmpServer) -> None:
    """Profile held (manual approval): ip waiting, pollRep with checkAfter, then `tetra requests
    approve` and the next pollReq gets the certificate, which a certConf confirms."""
    mac = mac_client(HELD_REFERENCE)
    key = new_key()
    request = mac.ir(key, subject("held.example"))
    waiting = server.exchange(request, "/p/held")
    assert (waiting.kind, waiting.status, waiting.certificate) == ("ip", PkiStatus.waiting, None)
    poll = mac.poll_req(request, waiting)
    still = server.exchange(poll, "/p/held")
    assert still.kind == "pollRep" and still.check_after == 1
    [pending] = server.pending_request_ids()
    server.cli("requests", "approve", str(pending))
    ready = server.exchange(mac.poll_req(request, still), "/p/held")
    assert ready.kind == "ip"
    issued(server, ready, key)
    assert server.exchange(mac.cert_conf(request, ready), "/p/held").kind == "pkiconf"


def test_p10cr_and_genm(server: CmpServer) -> None:
    """p10cr (certReqId -1) and genm: caCerts gives the issuing chain and root,
    certReqTemplate the profile's key types."""
    mac = mac_client()
    key = new_key()
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject("p10.example")).sign(key, hashes.SHA256())
    request = mac.p10cr(csr)
    reply = server.exchange(request)
    assert reply.kind == "cp" and reply.cert_req_id == -1
    issued(server, reply, key)
    assert server.exchange(mac.cert_conf(request, reply)).kind == "pkiconf"

    genp = server.exchange(mac.genm(cmp_client.itav("1.3.6.1.5.5.7.4.17"), cmp_client.itav("1.3.6.1.5.5.7.4.19")))
    assert genp.kind == "genp"
    cmp_client.check_protection(genp, mac.protection)
    values = {str(itav["infoType"]): itav["infoValue"] for itav in genp.message.body["genp"]}
    assert set(values) == {"1.3.6.1.5.5.7.4.17", "1.3.6.1.5.5.7.4.19"}


def test_a_device_maker_certificate_enrols_but_may_not_update(server: CmpServer) -> None:
    """A device signs its ir with the certificate its maker gave it (factory-ca.pem is a
    [cmp] trust anchor) and gets a certificate of this CA; the factory certificate cannot kur
    (it is not one of ours: CMP-10)."""
    device, device_key = device_certificate(*server.maker, "SN-CMP-0001")
    client = signing_client(device, device_key)
    key = new_key()
    request = client.ir(key, subject("factory-device.example"))
    reply = server.exchange(request)
    cmp_client.check_protection(reply, client.protection, trusted=server.ra)
    issued(server, reply, key)
    assert server.exchange(client.cert_conf(request, reply)).kind == "pkiconf"
    before = server.counts()
    refused = server.exchange(client.kur(new_key(), device))
    assert (refused.kind, refused.fail_info) == ("error", ("notAuthorized",)), refused.text
    assert server.counts() == before
