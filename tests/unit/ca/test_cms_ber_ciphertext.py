"""EnvelopedData's encryptedContent in its constructed BER form, as micromdm's scepclient (Go's
pkcs7) sends it: [0] with a definite length wrapping OCTET STRING chunks (SCEP-21). asn1crypto
parses a constructed string only with an indefinite length, so ca/cms reads this field itself;
interop/test_scepclient.py meets the form from the real client, these rows pin it down."""

from __future__ import annotations

import os

import pytest
from asn1crypto import cms as asn1_cms

from ca.cms import decrypt_enveloped, envelope
from ca.errors import CAError, FailureReason
from ca.revocation.asn1 import tlv
from tests.unit.ca.test_cms import identity, signer

OCTET_STRING, SEQUENCE, CONTEXT_0_CONSTRUCTED = 0x04, 0x30, 0xA0


def _rechunked(der: bytes, chunk: int, chunk_tag: int = OCTET_STRING) -> bytes:
    """The same EnvelopedData with its ciphertext as [0] constructed, definite length, in chunks."""
    enveloped = asn1_cms.ContentInfo.load(der)["content"]
    eci = enveloped["encrypted_content_info"]
    ciphertext = eci["encrypted_content"].native
    pieces = b"".join(tlv(chunk_tag, ciphertext[i : i + chunk]) for i in range(0, len(ciphertext), chunk))
    new_eci = tlv(
        SEQUENCE,
        eci["content_type"].dump() + eci["content_encryption_algorithm"].dump() + tlv(CONTEXT_0_CONSTRUCTED, pieces),
    )
    body = enveloped["version"].dump() + enveloped["recipient_infos"].dump() + new_eci
    content_type = asn1_cms.ContentType("enveloped_data").dump()
    return tlv(SEQUENCE, content_type + tlv(CONTEXT_0_CONSTRUCTED, tlv(SEQUENCE, body)))


@pytest.mark.parametrize("chunk", [16, 4096], ids=["many-chunks", "one-chunk-like-go"])
async def test_a_constructed_definite_length_ciphertext_decrypts_scep_21(chunk: int) -> None:
    plaintext = os.urandom(300)
    original = envelope(plaintext, identity("rsa")[1])
    chunked = _rechunked(original, chunk)
    assert chunked != original
    assert await decrypt_enveloped(chunked, signer("rsa"), identity("rsa")[1]) == plaintext


async def test_a_constructed_ciphertext_of_anything_but_octet_strings_is_malformed_scep_21() -> None:
    chunked = _rechunked(envelope(b"x" * 40, identity("rsa")[1]), 16, chunk_tag=0x02)  # INTEGERs
    with pytest.raises(CAError) as refused:
        await decrypt_enveloped(chunked, signer("rsa"), identity("rsa")[1])
    assert refused.value.reason is FailureReason.MALFORMED
