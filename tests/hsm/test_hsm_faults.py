"""A token that stops answering, under the whole issuance path (docs/reliability.md, ST-09):
the issuing CA's key on a real SoftHSM2 token, its low-level sign call made to hang."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
from pkcs11.mechanisms import Mechanism
from pkcs11.types import PrivateKey

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, EnrollmentRequest, Issued, Requester
from ca.errors import SignerUnavailable
from ca.signers.pkcs11 import Pkcs11Signer
from ca.store.repositories import CertificateFilter
from server.wiring import build_ca, read_config
from tests.helpers import LoopGaps, enroll, make_csr
from tests.hsm.conftest import fresh_label, token_uri
from tests.hsm.test_hsm_issuance import add_hsm_issuer

OPERATOR = Requester("hsm-test", AuthMethod.OPERATOR)
CALL_TIMEOUT = 0.5
STUCK_FOR = 1.5


def _request(name: str) -> EnrollmentRequest:
    csr, _ = make_csr([name])
    return enrollment_from_csr(csr, protocol="cli", profile_name="hsm-tls", requester=OPERATOR)


class WedgedToken:
    """Wraps the signer's one low-level sign call: the first call hangs for STUCK_FOR seconds
    (a wedged HSM), then answers; every call that reaches the token is counted."""

    def __init__(self, signer: Pkcs11Signer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.finished = threading.Event()  # the stuck call has returned
        original = signer._raw_sign

        def sign(key: PrivateKey, data: bytes, mechanism: Mechanism) -> bytes:
            self.calls += 1
            if self.calls == 1:
                time.sleep(STUCK_FOR)
                try:
                    return original(key, data, mechanism)
                finally:
                    self.finished.set()
            return original(key, data, mechanism)

        monkeypatch.setattr(signer, "_raw_sign", sign)


async def test_stuck_token_is_abandoned_and_never_signs_twice(
    ca_dir: Path,
    db_url: str,
    softhsm_module: str,
    softhsm_token: str,
    softhsm_pin: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ST-09: the token hangs inside a signature. That issuance, and one queued behind it on the
    token's single thread, fail with SignerUnavailable after the configured
    [signers.*] timeout_seconds, while the event loop keeps turning; their intents are marked
    failed. When the token wakes, the queued call never reaches it and nothing is retried: one
    token signature for the stuck serial, none for the queued one, and the next issuance gets
    a new serial and a single signature."""
    add_hsm_issuer(ca_dir, softhsm_module, token_uri(softhsm_token, fresh_label("st09")), softhsm_pin, "ec-p256")
    environ = {"TETRA_DATABASE__URL": db_url, "TETRA_SIGNERS__HSM__TIMEOUT_SECONDS": str(CALL_TIMEOUT)}
    ca = await build_ca(read_config(ca_dir / "tetra.toml", environ=environ))
    try:
        signer = ca.issuers["hsm-ca"].signer
        assert isinstance(signer, Pkcs11Signer) and signer.call_timeout == CALL_TIMEOUT
        token = WedgedToken(signer, monkeypatch)

        async with LoopGaps() as loop:
            started = time.monotonic()
            outcomes = await asyncio.gather(
                enroll(ca, _request("stuck.hsm.example.com")),
                enroll(ca, _request("queued.hsm.example.com")),
                return_exceptions=True,
            )
            elapsed = time.monotonic() - started
        for outcome in outcomes:
            assert isinstance(outcome, SignerUnavailable), outcomes
            assert "no answer within" in outcome.detail
        assert elapsed < CALL_TIMEOUT + 1.0, f"abandoned after {elapsed:.2f}s"
        assert loop.longest < 0.25, f"the event loop stalled for {loop.longest:.2f}s"

        failed = await ca.certificates.list(CertificateFilter(issuer="hsm-ca", status="failed"))
        assert sorted(r.sans for r in failed) == [("dns:queued.hsm.example.com",), ("dns:stuck.hsm.example.com",)]
        assert all(r.der is None for r in failed)

        assert await asyncio.to_thread(token.finished.wait, STUCK_FOR + 5)
        await asyncio.sleep(CALL_TIMEOUT)  # room for anything that would still reach the token
        assert token.calls == 1  # the stuck one only: the queued call was cancelled before it ran

        after = await enroll(ca, _request("after.hsm.example.com"))
        assert isinstance(after, Issued)
        assert after.certificate.serial_number not in {r.serial for r in failed}
        assert token.calls == 2
        records = await ca.certificates.list(CertificateFilter(issuer="hsm-ca"))
        assert len({r.serial for r in records}) == len(records) == 3  # no second row for any serial
        assert (await ca.audit.verify()).ok
    finally:
        await ca.close()
