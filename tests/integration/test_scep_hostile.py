"""SCEP-09 and SCEP-10 on the wire: hostile PKIOperations POSTed to `tetra serve`.

SCEP-10: the hand-built hostile envelopes (tests/hostile_cms.py) inside validly signed PKCSReqs,
the same bytes sent bare, and mutations of signed messages get a CertRep FAILURE or an HTTP 4xx
(413 for the 40,000-deep ones, over the body limit; tests/fuzz/test_fuzz_scep_cms.py parses those),
never a 5xx, and store nothing. SCEP-09: an envelope to another RA certificate, an encrypted
key that is random, padded wrongly or encrypted to another key, and a broken CBC padding all get
the very same CertRep (pkiStatus, failInfo and failInfoText), though each PKCSReq carries the
right challenge and would otherwise be issued.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import cms, core
from hypothesis import given
from hypothesis import strategies as st

from ca.cms.scep import OID_MESSAGE_TYPE, OID_SENDER_NONCE, OID_TRANSACTION_ID
from tests import scep_client
from tests.fuzz.harness import fuzz_settings, mutated
from tests.helpers import self_signed
from tests.hostile_cms import (
    bad_encrypted_keys,
    broken_content_padding,
    hostile_envelopes,
    valid_envelope,
    with_encrypted_key,
)
from tests.integration.scep_support import STATIC, ScepServer, scep_server

pytestmark = pytest.mark.slow

MAX_BODY = 65536  # [scep] max_body in tests/integration/scep_support.py
FAIL_INFOS = {scep_client.BAD_ALG, scep_client.BAD_MESSAGE_CHECK, scep_client.BAD_REQUEST}  # for a broken message


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[ScepServer]:
    tmp = tmp_path_factory.mktemp("scep-hostile")
    shutil.copytree(template_dir, tmp / "ca")
    yield from scep_server(tmp / "ca", tmp)


def signed_pkcs_req(envelope_der: bytes, requester: scep_client.Requester) -> scep_client.Message:
    """A PKCSReq signed by ``requester`` whose pkcsPKIEnvelope is ``envelope_der``, whatever it is."""
    tid, nonce = requester.transaction_id(), os.urandom(16)
    attributes = [
        cms.CMSAttribute({"type": OID_MESSAGE_TYPE, "values": [core.PrintableString(scep_client.PKCS_REQ)]}),
        cms.CMSAttribute({"type": OID_TRANSACTION_ID, "values": [core.PrintableString(tid)]}),
        cms.CMSAttribute({"type": OID_SENDER_NONCE, "values": [core.OctetString(nonce)]}),
    ]
    der = scep_client.sign(envelope_der, requester.key, requester.certificate, attributes)
    return scep_client.Message(der, scep_client.PKCS_REQ, tid, nonce)


def failure(server: ScepServer, message: scep_client.Message, requester: scep_client.Requester) -> tuple[str, ...]:
    """POST ``message``; it must get a CertRep FAILURE; returns (pkiStatus, failInfo, failInfoText)."""
    reply = server.exchange(message, requester)
    assert reply.status == scep_client.FAILURE and reply.fail_info in FAIL_INFOS, reply
    return reply.status, reply.fail_info or "", reply.fail_info_text or ""


def test_scep10_hostile_envelopes_get_failure(server: ScepServer) -> None:
    """SCEP-10: each hostile envelope, signed as a PKCSReq: CertRep FAILURE; sent bare: HTTP 400."""
    before = server.counts()
    requester = scep_client.Requester.fresh("hostile")
    for name, (der, _) in hostile_envelopes(server.ra_certificate()).items():
        message = signed_pkcs_req(der, requester)
        if len(message.der) > MAX_BODY:  # the 40,000-deep ones: refused before any parsing
            assert server.post(message).status == 413, name
        else:
            failure(server, message, requester)
        bare = server.post(scep_client.Message(der, scep_client.PKCS_REQ, "", b""))
        assert bare.status == (413 if len(der) > MAX_BODY else 400), (name, bare.status, bare.body[:200])
    assert server.counts() == before


def test_scep10_mutated_messages_never_5xx(server: ScepServer) -> None:
    """SCEP-10, DOS-06: mutations of a signed PKCSReq (wrong challenge, so nothing may issue) and
    of the hostile envelopes: HTTP 200 with a CertRep, or 4xx; never 5xx; nothing stored; no
    traceback in the server's log."""
    before = server.counts()
    requester = scep_client.Requester.fresh("mutant")
    ra = server.ra_certificate()
    wrong = scep_client.pkcs_req(requester, ra, "mutant.example.com", ["mutant.example.com"], challenge="wrong-one")
    hostile = [der for der, _ in hostile_envelopes(ra).values()]
    seeds = st.sampled_from([wrong.der, signed_pkcs_req(valid_envelope(ra), requester).der, *hostile])

    @fuzz_settings(0.5)
    @given(seeds.flatmap(mutated))
    def check(body: bytes) -> None:
        reply = server.http("POST", f"{server.url}?operation=PKIOperation", body, "application/x-pki-message")
        assert reply.status in (200, 400, 413), (reply.status, reply.body[:200])
        if reply.status == 200:
            assert reply.headers["content-type"] == "application/x-pki-message"

    check()
    assert server.counts() == before
    assert "Traceback" not in server.log_path.read_text(errors="replace"), server.log_tail()


def test_scep09_decryption_failures_are_one_answer(server: ScepServer) -> None:
    """SCEP-09: five ways the envelope's key can be wrong, one CertRep. CBC has no integrity, so a
    random content key passes the padding check one time in 256 and then the content is garbage:
    each variant gets three fresh tries to show the common answer, and none may issue."""
    before = server.counts()
    ra = server.ra_certificate()
    _, other = self_signed("another SCEP RA")

    def attempt(variant: str) -> tuple[str, ...]:
        requester = scep_client.Requester.fresh("uniform.example.com")
        csr = scep_client.build_csr(requester.key, "uniform.example.com", ["uniform.example.com"], challenge=STATIC)
        good = scep_client.envelope(csr, ra, "aes128")
        if variant == "broken CBC padding":
            envelope = broken_content_padding(good)
        elif variant == "envelope to another RA certificate":
            envelope = scep_client.envelope(csr, other, "aes128")
        else:
            envelope = with_encrypted_key(good, bad_encrypted_keys(ra, other, 16)[variant])
        return failure(server, signed_pkcs_req(envelope, requester), requester)

    expected = attempt("broken CBC padding")
    assert expected[1] == scep_client.BAD_MESSAGE_CHECK, expected
    for variant in ("envelope to another RA certificate", *bad_encrypted_keys(ra, other, 16)):
        answers = [attempt(variant) for _ in range(3)]
        assert expected in answers, (variant, answers)
    assert server.counts() == before
