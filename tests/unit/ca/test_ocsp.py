"""OCSP core on both stores: status lookup, pre-signing, the feed, refresh, responders, repair."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import select

from ca.clock import FrozenClock
from ca.errors import SignerUnavailable
from ca.recovery import settle_stale_intents
from ca.revocation.model import CertId, ResponseStatus, StatusQuery
from ca.revocation.ocsp import OcspService
from ca.revocation.ocsp_store import CertRow, upsert_responses
from ca.revocation.pointers import install_pointers
from ca.revocation.tables import ocsp_responses
from ca.service import CertificateAuthority
from server.config import ServerConfig
from server.wiring import build_ca
from tests.pkilint_check import assert_certificate_lints_clean
from tests.revocation_support import (
    certificate_row,
    check_ocsp,
    crl_settings,
    insert_rows,
    issue,
    ocsp_settings,
    query,
)

ISSUER = "issuing-ca"


async def _service(ca: CertificateAuthority, **settings: Any) -> OcspService:
    await install_pointers(ca, crl_settings())
    service = OcspService(ca, ocsp_settings(**settings))
    await service.start()
    service.presign_issued = True
    return service


@pytest.fixture
async def service(ca: CertificateAuthority) -> AsyncIterator[OcspService]:
    svc = await _service(ca)
    yield svc
    await svc.close()


def _status(der: bytes) -> ocsp.OCSPResponse:
    return ocsp.load_der_ocsp_response(der)


async def _stored(ca: CertificateAuthority, serial: int) -> dict[str, str]:
    def q(conn: Any) -> dict[str, str]:
        rows = conn.execute(
            select(ocsp_responses.c.hash_alg, ocsp_responses.c.status).where(
                ocsp_responses.c.serial == format(serial, "x")
            )
        )
        return {r.hash_alg: r.status for r in rows}

    return await ca.db.read(q)


async def test_issued_certificate_is_presigned_for_sha1_and_sha256(
    ca: CertificateAuthority, service: OcspService
) -> None:
    """OCSP-07, OCSP-14: both CertID hashes answered from pre-signed responses, no signature
    on the request path; every response lints clean and verifies with the responder chain."""
    issued = await issue(ca)
    await service.poll_feed()
    assert await _stored(ca, issued.certificate.serial_number) == {"sha1": "good", "sha256": "good"}
    before = service.fresh_signatures
    issuer_cert = issued.chain[0]
    for hash_name in ("sha1", "sha256"):
        answer = await service.respond(query(issued.certificate, issuer_cert, hash_name))
        assert answer.status is ResponseStatus.SUCCESSFUL and answer.cacheable
        response = check_ocsp(answer.der, issuer_cert)
        assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert response.serial_number == issued.certificate.serial_number
        assert response.hash_algorithm.name == hash_name
    assert service.fresh_signatures == before


async def test_never_issued_failed_and_signing_rows_are_unknown(ca: CertificateAuthority, service: OcspService) -> None:
    """OCSP-01 / docs/reliability.md, Conventions: "nothing issued" (iv): never 'good' for a
    serial we did not issue; we answer 'unknown' (not the 'revoked' + certificateHold variant,
    which the BR ban on suspension makes unattractive). A 'signing' row younger than the grace is
    an issuance in flight: unknown. One older than the grace was cut short by a crash and may or
    may not have been signed: still unknown, never good, until recovery settles it (ST-17), and
    never pre-signed by the repair sweep."""
    issuer_cert = ca.issuers[ISSUER].certificate
    now = ca.clock.now()
    failed, young, old = (secrets.randbits(120) for _ in range(3))
    await insert_rows(
        ca,
        [
            certificate_row(ISSUER, failed, "failed", now=now),
            certificate_row(ISSUER, young, "signing", now=now),
            certificate_row(ISSUER, old, "signing", now=now, created_at=now - dt.timedelta(minutes=10)),
        ],
    )
    hashes = service._hashes[ISSUER]
    for serial, expected in (
        (secrets.randbits(120), ocsp.OCSPCertStatus.UNKNOWN),
        (failed, ocsp.OCSPCertStatus.UNKNOWN),
        (young, ocsp.OCSPCertStatus.UNKNOWN),
        (old, ocsp.OCSPCertStatus.UNKNOWN),
    ):
        cid = CertId("sha1", hashes.name_hash["sha1"], hashes.key_hash["sha1"], serial)
        answer = await service.respond(StatusQuery((cid,)))
        assert check_ocsp(answer.der, issuer_cert).certificate_status == expected
    await service.reconcile()
    for serial in (young, old):
        assert set(await _stored(ca, serial)) == set()  # unknown answers are never stored


async def test_foreign_issuer_and_wrong_key_hash_are_unauthorized(service: OcspService) -> None:
    """OCSP-04: a CA we do not serve, or our name with another key, gets unauthorized."""
    hashes = service._hashes[ISSUER]
    foreign = CertId("sha1", b"\x01" * 20, b"\x02" * 20, 5)
    wrong_key = CertId("sha1", hashes.name_hash["sha1"], b"\x02" * 20, 5)
    for cid in (foreign, wrong_key):
        answer = await service.respond(StatusQuery((cid,)))
        assert answer.status is ResponseStatus.UNAUTHORIZED
        assert _status(answer.der).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


async def test_several_certificates_in_one_request(ca: CertificateAuthority, service: OcspService) -> None:
    """OCSP-06 (core side): each CertID gets its SingleResponse, signed once."""
    good, revoked = await issue(ca, "a.example.com"), await issue(ca, "b.example.com")
    await ca.revoke(ISSUER, revoked.certificate.serial_number, "superseded", requester="t")
    await service.poll_feed()
    issuer_cert = good.chain[0]
    never = dataclasses.replace(query(good.certificate, issuer_cert).cert_ids[0], serial=secrets.randbits(100))
    cids = (
        query(good.certificate, issuer_cert).cert_ids[0],
        query(revoked.certificate, issuer_cert).cert_ids[0],
        never,
    )
    answer = await service.respond(StatusQuery(cids))
    response = check_ocsp(answer.der, issuer_cert)
    statuses = [r.certificate_status for r in response.responses]
    assert statuses == [ocsp.OCSPCertStatus.GOOD, ocsp.OCSPCertStatus.REVOKED, ocsp.OCSPCertStatus.UNKNOWN]
    assert not answer.cacheable


async def test_nonce_is_echoed_in_a_fresh_signature(ca: CertificateAuthority, service: OcspService) -> None:
    """OCSP-08: nonces of 1 and 32 octets come back byte for byte (RFC 8954)."""
    issued = await issue(ca)
    await service.poll_feed()
    for size in (1, 16, 32):
        nonce = secrets.token_bytes(size)
        before = service.fresh_signatures
        answer = await service.respond(query(issued.certificate, issued.chain[0], nonce=nonce))
        response = check_ocsp(answer.der, issued.chain[0])
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
        assert service.fresh_signatures == before + 1 and not answer.cacheable


async def test_revocation_seen_on_the_feed_changes_the_answer(ca: CertificateAuthority, service: OcspService) -> None:
    """OCSP-10: after a revocation the cached 'good' is gone; reason and time are exact;
    'unspecified' is expressed by leaving the reason out."""
    first, second = await issue(ca, "r1.example.com"), await issue(ca, "r2.example.com")
    await service.poll_feed()
    issuer_cert = first.chain[0]
    assert _status((await service.respond(query(first.certificate, issuer_cert))).der).certificate_status == (
        ocsp.OCSPCertStatus.GOOD
    )
    record = await ca.revoke(ISSUER, first.certificate.serial_number, "keyCompromise", requester="t")
    await ca.revoke(ISSUER, second.certificate.serial_number, "unspecified", requester="t")
    await service.poll_feed()
    for hash_name in ("sha1", "sha256"):
        response = check_ocsp(
            (await service.respond(query(first.certificate, issuer_cert, hash_name))).der, issuer_cert
        )
        assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert response.revocation_reason == x509.ReasonFlags.key_compromise
        assert record.revoked_at is not None
        assert response.revocation_time_utc == record.revoked_at.replace(microsecond=0)
    response = check_ocsp((await service.respond(query(second.certificate, issuer_cert))).der, issuer_cert)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED and response.revocation_reason is None
    assert await _stored(ca, first.certificate.serial_number) == {"sha1": "revoked", "sha256": "revoked"}


async def test_revocation_by_another_process_is_picked_up(
    ca: CertificateAuthority, service: OcspService, config: ServerConfig
) -> None:
    """OCSP-10 / ST-15: `tetra revoke` runs in its own process with no OCSP code at all;
    the server learns it from the audit feed and re-signs."""
    issued = await issue(ca)
    await service.poll_feed()
    other = await build_ca(config)  # a second CertificateAuthority on the same store
    try:
        await other.revoke(ISSUER, issued.certificate.serial_number, "cessationOfOperation", requester="cli")
    finally:
        await other.close()
    assert await service.poll_feed() >= 1
    response = _status((await service.respond(query(issued.certificate, issued.chain[0]))).der)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED


async def test_a_late_good_signature_never_replaces_a_revoked_one(
    ca: CertificateAuthority, service: OcspService
) -> None:
    """Never 'good' for a revoked certificate, whatever order writers commit in: a refresh that
    read the status before the revocation cannot overwrite the revoked response."""
    issued = await issue(ca)
    await service.poll_feed()
    serial = issued.certificate.serial_number
    record = await ca.certificates.by_serial(ISSUER, serial)
    assert record is not None
    stale = CertRow(ISSUER, record.serial_hex, "issued", None, None, record.created_at, record.not_after)
    await ca.revoke(ISSUER, serial, "keyCompromise", requester="t")
    await service.poll_feed()
    assert await service.presign([(stale, "sha1")]) == 0  # dropped: the certificate is revoked now
    # Even written directly, the guarded upsert keeps the revoked row.
    row = {
        "issuer": ISSUER,
        "serial": record.serial_hex,
        "hash_alg": "sha1",
        "status": "good",
        "revoked_at": None,
        "revocation_reason": None,
        "cert_not_after": record.not_after,
        "der": b"x",
        "this_update": ca.clock.now(),
        "next_update": ca.clock.now(),
        "produced_at": ca.clock.now(),
    }
    await ca.db.write(lambda tx: upsert_responses(tx, [row]))
    assert (await _stored(ca, serial))["sha1"] == "revoked"
    response = _status((await service.respond(query(issued.certificate, issued.chain[0]))).der)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED


async def test_signer_down_presigned_still_served_fresh_gets_try_later(
    ca: CertificateAuthority, service: OcspService
) -> None:
    """OCSP-13: with the responder key unavailable, pre-signed answers keep flowing and
    what needs a signature gets tryLater."""
    issued = await issue(ca)
    await service.poll_feed()

    class Down:
        name = "down"
        needs_signature_check = True

        def public_key(self) -> Any:
            return identity.signer.public_key()

        def private_key(self) -> Any:
            raise SignerUnavailable("token removed")

        async def run(self, work: Any) -> Any:
            raise SignerUnavailable("token removed")

        async def check(self) -> None:
            raise SignerUnavailable("token removed")

        async def close(self) -> None:
            return None

    identity = await service.responders.identity(ISSUER)
    service.responders._current[ISSUER] = dataclasses.replace(identity, signer=Down())
    presigned = await service.respond(query(issued.certificate, issued.chain[0]))
    assert _status(presigned.der).certificate_status == ocsp.OCSPCertStatus.GOOD
    fresh = await service.respond(query(issued.certificate, issued.chain[0], nonce=b"n" * 16))
    assert fresh.status is ResponseStatus.TRY_LATER


async def test_fresh_signatures_are_rate_limited(ca: CertificateAuthority) -> None:
    """A flood of nonce requests cannot exhaust the signer: past the budget a nonce request
    gets the pre-signed answer without the nonce (RFC 8954 allows it), and what has no
    pre-signed answer gets tryLater."""
    service = await _service(ca, fresh_rate=0.001, fresh_burst=1)
    try:
        issued = await issue(ca)
        await service.poll_feed()
        first = await service.respond(query(issued.certificate, issued.chain[0], nonce=b"a" * 16))
        assert _status(first.der).extensions.get_extension_for_class(x509.OCSPNonce)
        second = await service.respond(query(issued.certificate, issued.chain[0], nonce=b"b" * 16))
        response = check_ocsp(second.der, issued.chain[0])
        assert response.certificate_status == ocsp.OCSPCertStatus.GOOD and len(response.extensions) == 0
        unknown = dataclasses.replace(query(issued.certificate, issued.chain[0]).cert_ids[0], serial=12345)
        assert (await service.respond(StatusQuery((unknown,)))).status is ResponseStatus.TRY_LATER
    finally:
        await service.close()


async def test_responder_certificate_profile(ca: CertificateAuthority, service: OcspService) -> None:
    """OCSP-11: end-entity, OCSPSigning only, ocsp-nocheck, no AIA/CDP, SKI, subject C and O,
    short life; lints clean as a BR OCSP responder certificate."""
    identity = await service.responders.identity(ISSUER)
    cert = identity.certificate
    assert cert is not None
    assert_certificate_lints_clean(cert.public_bytes(Encoding.DER), "cabf-serverauth", cabf_type="OCSP-RESPONDER")
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    cert.extensions.get_extension_for_class(x509.OCSPNoCheck)
    cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    for absent in (x509.AuthorityInformationAccess, x509.CRLDistributionPoints):
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(absent)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(days=30)
    record = await ca.certificates.by_serial(ISSUER, cert.serial_number)
    assert record is not None and record.status == "issued"  # recorded like any certificate


async def test_ca_key_mode(ca: CertificateAuthority) -> None:
    """responder = "ca": the CA signs; no certificate in the response."""
    service = await _service(ca, responder="ca")
    try:
        issued = await issue(ca)
        await service.poll_feed()
        answer = await service.respond(query(issued.certificate, issued.chain[0]))
        assert check_ocsp(answer.der, issued.chain[0], delegated=False).certificate_status == (ocsp.OCSPCertStatus.GOOD)
    finally:
        await service.close()


async def test_validity_refresh_and_rotation_with_a_frozen_clock(config: ServerConfig) -> None:
    """OCSP-09: nextUpdate - thisUpdate = 7 days (8 h..10 d); the leader re-signs once
    thisUpdate is 4 days old; nothing is served within minutes of nextUpdate; the responder
    certificate is replaced while it still covers a full validity."""
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    ca = await build_ca(config, clock=clock)
    service = await _service(ca)
    try:
        issued = await issue(ca)
        await service.poll_feed()
        q = query(issued.certificate, issued.chain[0])
        first = _status((await service.respond(q)).der)
        assert first.next_update_utc - first.this_update_utc == dt.timedelta(days=7)  # type: ignore[operator]
        clock.advance(dt.timedelta(days=4, seconds=1))
        assert await service.refresh_due() == 2  # sha1 and sha256
        second = _status((await service.respond(q)).der)
        assert second.this_update_utc == clock.now()
        first_responder = (await service.responders.identity(ISSUER)).certificate
        clock.advance(dt.timedelta(days=23))
        rotated = await service.responders.rotate_due()
        assert rotated == [ISSUER]
        new_responder = (await service.responders.identity(ISSUER)).certificate
        assert new_responder is not None and first_responder is not None
        assert new_responder.serial_number != first_responder.serial_number
        clock.advance(dt.timedelta(days=1))  # past the stored response's nextUpdate - margin
        service.cache.clear()
        before = service.fresh_signatures
        third = check_ocsp((await service.respond(q)).der, issued.chain[0])
        assert service.fresh_signatures == before + 1  # an expired stored response is not served
        assert third.next_update_utc is not None and third.next_update_utc > clock.now()
    finally:
        await service.close()
        await ca.close()


async def test_reconcile_repairs_what_a_crash_leaves(ca: CertificateAuthority, config: ServerConfig) -> None:
    """ST-01 / ST-17 / docs/reliability.md, demand 5: a revocation whose OCSP re-signing never
    ran (the process died in between) is repaired. A 'signing' row past the grace is not given a
    'good' response: recovery revokes it, and the feed brings its 'revoked' response."""
    first = await _service(ca)
    issued = await issue(ca)
    await first.poll_feed()
    await first.close()
    await ca.revoke(ISSUER, issued.certificate.serial_number, "keyCompromise", requester="t")  # nobody listening
    now = ca.clock.now()
    orphan = secrets.randbits(120)
    await insert_rows(
        ca, [certificate_row(ISSUER, orphan, "signing", now=now, created_at=now - dt.timedelta(minutes=10))]
    )
    restarted = await _service(ca)  # starts at the head of the feed: it did not see the revocation
    try:
        assert await _stored(ca, issued.certificate.serial_number) == {"sha1": "good", "sha256": "good"}
        assert await restarted.reconcile() >= 2
        assert await _stored(ca, issued.certificate.serial_number) == {"sha1": "revoked", "sha256": "revoked"}
        assert await _stored(ca, orphan) == {}
        [settled] = await settle_stale_intents(ca, restarted.settings.signing_grace)
        assert (settled.serial, settled.outcome) == (orphan, "revoked")
        await restarted.poll_feed()
        assert await _stored(ca, orphan) == {"sha1": "revoked", "sha256": "revoked"}
        response = _status((await restarted.respond(query(issued.certificate, issued.chain[0]))).der)
        assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    finally:
        await restarted.close()


async def test_preload_warms_the_cache(ca: CertificateAuthority, service: OcspService) -> None:
    """The hot path is a lookup: after a restart the stored responses are in memory."""
    issued = await issue(ca)
    await service.poll_feed()
    fresh = OcspService(ca, ocsp_settings())
    try:
        await fresh.start(preload=True)
        assert len(fresh.cache) >= 2
        assert fresh.cache.get((ISSUER, issued.certificate.serial_number, "sha1")) is not None
    finally:
        await fresh.close()


async def test_responder_key_from_a_file_is_shared_rotated_and_pruned(
    config: ServerConfig, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OCSP-11 with `[ocsp.responder_key] source = "file"`: the certificate certifies the file's
    key (encrypted PKCS#8, passphrase from the environment), a second process reuses it instead of
    issuing another, rotation issues a new one, and rows of expired responder certificates are
    pruned when a new one is recorded."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from ca.revocation.settings import RESPONDER_SIGNER, ResponderKeySettings
    from ca.revocation.tables import ocsp_responders
    from ca.signers.registry import SignerSpec
    from ca.signers.software import save_encrypted_key

    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "responder.key"
    save_encrypted_key(key, path, b"s3cret")
    env = f"TETRA_TEST_RESPONDER_PASS_{secrets.token_hex(4)}"
    monkeypatch.setenv(env, "s3cret")
    spec = SignerSpec(RESPONDER_SIGNER, "software", key_file=path, passphrase_env=env)
    key_settings = ResponderKeySettings(signer=spec)
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    ca = await build_ca(config, clock=clock)
    first = await _service(ca, key=key_settings)
    second = await _service(ca, key=key_settings)
    try:
        issued = await issue(ca)
        await first.poll_feed()
        answer = await first.respond(query(issued.certificate, issued.chain[0], nonce=b"f" * 16))
        assert check_ocsp(answer.der, issued.chain[0]).certificate_status == ocsp.OCSPCertStatus.GOOD
        mine = (await first.responders.identity(ISSUER)).certificate
        assert mine is not None and mine.public_key() == key.public_key()
        theirs = (await second.responders.identity(ISSUER)).certificate
        assert theirs is not None and theirs.serial_number == mine.serial_number

        async def stored_serials() -> list[int]:
            rows = await ca.db.read(lambda conn: conn.execute(select(ocsp_responders.c.der)).all())
            return [x509.load_der_x509_certificate(bytes(r.der)).serial_number for r in rows]

        clock.advance(dt.timedelta(days=23))  # within rotate_before of the end: rotate
        assert await first.responders.rotate_due() == [ISSUER]
        rotated = (await first.responders.identity(ISSUER)).certificate
        assert rotated is not None and rotated.serial_number != mine.serial_number
        assert sorted(await stored_serials()) == sorted([mine.serial_number, rotated.serial_number])
        clock.advance(dt.timedelta(days=30))  # the first certificate has expired; rotate again
        assert await first.responders.rotate_due() == [ISSUER]
        latest = (await first.responders.identity(ISSUER)).certificate
        assert latest is not None
        assert mine.serial_number not in await stored_serials()
        assert latest.serial_number in await stored_serials()
    finally:
        await first.close()
        await second.close()
        await ca.close()


async def test_nonce_is_signed_inline_only_when_nothing_needs_waiting(ca: CertificateAuthority) -> None:
    """OCSP-08, OCSP-14: `answer_now` (the plain-HTTP fast path) signs a nonce request on the
    spot when the status is cached and the responder key is in this process, echoing the nonce;
    an uncached status, a signer outside the process or an empty signing budget leave it to
    `respond` (None), which still answers, falling back to the pre-signed answer when over budget."""
    service = await _service(ca, fresh_rate=0.001, fresh_burst=1)
    try:
        issued = await issue(ca)
        await service.poll_feed()
        issuer_cert = issued.chain[0]
        before = service.fresh_signatures
        answer = service.answer_now(query(issued.certificate, issuer_cert, nonce=b"n" * 16))
        assert answer is not None and service.fresh_signatures == before + 1
        response = check_ocsp(answer.der, issuer_cert)
        assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"n" * 16
        assert service.answer_now(query(issued.certificate, issuer_cert, nonce=b"m" * 16)) is None  # no token left
        over_budget = await service.respond(query(issued.certificate, issuer_cert, nonce=b"m" * 16))
        assert len(check_ocsp(over_budget.der, issuer_cert).extensions) == 0  # the pre-signed answer
        service._bucket = type(service._bucket)(0, 1)  # unlimited from here on
        uncached = dataclasses.replace(query(issued.certificate, issuer_cert).cert_ids[0], serial=12345)
        assert service.answer_now(StatusQuery((uncached,), b"\x04\x02hi")) is None
        identity = await service.responders.identity(ISSUER)
        service.responders._current[ISSUER] = dataclasses.replace(identity, signer=_NotInProcess(identity.signer))
        assert service.answer_now(query(issued.certificate, issuer_cert, nonce=b"o" * 16)) is None
        fresh = await service.respond(query(issued.certificate, issuer_cert, nonce=b"o" * 16))
        assert check_ocsp(fresh.der, issuer_cert).extensions.get_extension_for_class(x509.OCSPNonce)
    finally:
        await service.close()


class _NotInProcess:
    """Wraps a signer so it looks like a device (an HSM): signatures go through `run`."""

    name = "device"
    needs_signature_check = True  # a device can be faulted: its signatures are checked

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def public_key(self) -> Any:
        return self._inner.public_key()

    def private_key(self) -> Any:
        return self._inner.private_key()

    async def run(self, work: Any) -> Any:
        return work()

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None
