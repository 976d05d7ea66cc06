"""The failInfo table, the CRMF hand-over, and memory under a stream of refused messages."""

from __future__ import annotations

import datetime as dt
import gc
import tracemalloc

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from pyasn1.codec.der import encoder as der_encoder

from ca.crmf import PopMethod, enrollment_from_cert_req_msg
from ca.enrollment import AuthMethod, Requester
from ca.errors import CAError, FailureReason
from protocols.cmp.config import MacLimits
from protocols.cmp.der import children, explicit, read_tlv, sequence
from protocols.cmp.errors import FAIL_INFO_FOR, CmpFailure, FailInfo, failure_for
from protocols.cmp.message import decode_message
from protocols.cmp.protection import verify_mac
from tests.unit.protocols.cmp.cmp_vectors import SECRET, vector

CMP_CLIENT = Requester("cmp-client", AuthMethod.SHARED_SECRET)


def test_every_failure_reason_has_a_fail_info() -> None:
    assert set(FAIL_INFO_FOR) == set(FailureReason)


def test_core_refusals_map_to_their_bits_and_hide_internal_detail() -> None:
    assert failure_for(CAError("bad POP", FailureReason.BAD_SIGNATURE)).fail_info is FailInfo.badPOP
    internal = failure_for(CAError("db at 10.0.0.3 down", FailureReason.UNAVAILABLE))
    internal.peer_caused = False
    assert internal.fail_info is FailInfo.systemUnavail and "10.0.0.3" not in internal.public_text()


@pytest.mark.parametrize("name", ["ir-mac.req.der", "cr-sig.req.der", "kur-mac.req.der"])
def test_a_decoded_request_body_goes_to_ca_crmf_with_its_pop_checked(name: str) -> None:
    message = decode_message(vector(name))
    cert_req_msg = message.body[message.body_type][0]
    translated = enrollment_from_cert_req_msg(cert_req_msg, profile_name="device", requester=CMP_CLIENT)
    assert translated.pop is PopMethod.SIGNATURE


def test_a_pop_signature_over_another_request_is_refused_as_bad_pop() -> None:
    """CMP-09 (message layer): a POPO signature that does not cover this request is badPOP."""
    message = decode_message(vector("ir-mac.req.der"))
    cert_req_msg = message.body["ir"][0]
    cert_req_msg["certReq"]["certReqId"] = 5  # the POP signed certReqId 0
    with pytest.raises(CAError) as caught:
        enrollment_from_cert_req_msg(der_encoder.encode(cert_req_msg), profile_name="device", requester=CMP_CLIENT)
    assert failure_for(caught.value).fail_info is FailInfo.badPOP


def _fresh_certificate(index: int) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string(f"CN=stranger {index}")
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
    builder = builder.serial_number(index + 1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def test_refused_messages_with_fresh_extra_certs_do_not_grow_memory() -> None:
    """The issue's "stream of rejected messages, each with a fresh certificate in extraCerts":
    decode, read the certificate, refuse the MAC; memory after the second batch is where
    the first batch left it (no cache keyed by certificate, in our code or pyasn1's)."""
    raw = vector("ir-mac.req.der")
    header, body, protection = (part.whole(raw) for part in children(raw, read_tlv(raw, 0, len(raw))))
    certificates = [_fresh_certificate(i) for i in range(225)]

    def refuse(batch: list[bytes]) -> None:
        for cert in batch:
            message = decode_message(sequence(header, body, protection, explicit(1, sequence(cert))))
            assert message.extra_certs()[0].serial_number > 0
            with pytest.raises(CmpFailure):
                verify_mac(message, SECRET + b"-wrong", MacLimits())

    refuse(certificates[:25])  # warm-up: imports, pyasn1's per-type structures
    gc.collect()
    tracemalloc.start()
    try:
        refuse(certificates[25:125])
        gc.collect()
        after_first, _ = tracemalloc.get_traced_memory()
        refuse(certificates[125:])
        gc.collect()
        after_second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after_second - after_first < 64 * 1024, (after_first, after_second)
