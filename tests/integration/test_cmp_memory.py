"""The issue's "large stream of rejected messages, each carrying a fresh certificate in
extraCerts" through the server's own sender check (protocols/cmp/auth.py) on a real CA: every
one is refused signerNotTrusted after the core has looked the certificate up, and memory after
the second batch is where the first left it (no cache keyed by certificate, in CMP or the core).
tests/unit/protocols/cmp/test_cmp_errors.py checks the same of the message layer alone."""

from __future__ import annotations

import gc
import tracemalloc

import pytest

from ca.service import CertificateAuthority
from protocols.cmp.auth import Authenticator
from protocols.cmp.config import CmpConfig
from protocols.cmp.errors import CmpFailure, FailInfo
from protocols.cmp.message import decode_message
from protocols.cmp.reply import SignatureProtection
from tests import cmp_client
from tests.helpers import self_signed
from tests.integration.cmp_support import new_key, subject


async def test_refused_signers_with_fresh_certificates_do_not_grow_memory(ca: CertificateAuthority) -> None:
    ra = ca.ra()
    authenticator = Authenticator(ca, CmpConfig(), SignatureProtection(ra.signer, ra.certificate))
    messages = []
    for index in range(225):
        key, certificate = self_signed(f"stranger {index}", key_spec="ec-p256")
        client = cmp_client.Client(cmp_client.Signature(key, certificate))
        messages.append(client.ir(new_key(), subject("s.example")).der)

    async def refuse(batch: list[bytes]) -> None:
        for der in batch:
            with pytest.raises(CmpFailure) as refused:
                await authenticator.sender(decode_message(der))
            assert refused.value.fail_info is FailInfo.signerNotTrusted

    await refuse(messages[:25])  # warm-up: imports, pyasn1's per-type structures, the store's statements
    gc.collect()
    tracemalloc.start()
    try:
        await refuse(messages[25:125])
        gc.collect()
        after_first, _ = tracemalloc.get_traced_memory()
        await refuse(messages[125:])
        gc.collect()
        after_second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after_second - after_first < 64 * 1024, (after_first, after_second)
