"""Where one SCEP PKCSReq's server CPU goes in Tetra, step by step, in one process: each step of
the path protocols/scep takes (the same ca.cms / ca.csr calls, an RSA-2048 RA key in memory)
run in a hot loop and timed with process CPU time, beside the bare RSA private-key operations
inside them. The core's issuance itself is bench_core.py's subject and is not repeated here.

    python bench/scep_breakdown.py [--rounds 300]

Hot-loop figures are a floor: inside the server the same calls interleave with the event loop,
the store and HTTP, and cost more (bench_acme_floor.py measured 1.5-2x for ACME's pieces).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from ca.cms import certs_only, decrypt_enveloped, envelope, parse_signed_data, sign_data
from ca.cms.enveloped import ContentCipher, envelope_cipher
from ca.cms.scep import MessageType, PkiStatus, read_scep_attributes, scep_attributes
from ca.cms.verify import unverified_signed_attributes
from ca.csr import parse_csr
from ca.signers.software import SoftwareSigner
from tests import scep_client


async def cpu_ms(rounds: int, step: Callable[[], Awaitable[object]]) -> float:
    """Process CPU milliseconds per call of `step` (threads included: RSA runs in the executor)."""
    await step()
    start = time.process_time()
    for _ in range(rounds):
        await step()
    return (time.process_time() - start) * 1e3 / rounds


async def main(rounds: int) -> None:
    ra = scep_client.Requester.fresh("Tetra bench SCEP RA")  # an RSA-2048 key and certificate
    signer = SoftwareSigner("ra", ra.key)
    device = scep_client.Requester.fresh("device.bench.example.com")
    message = scep_client.pkcs_req(device, ra.certificate, "device.bench.example.com", ["device.bench.example.com"])
    request = message.der
    signed = parse_signed_data(request)
    csr_der = await decrypt_enveloped(signed.content, signer, ra.certificate)
    chain = [device.certificate, ra.certificate]  # stand-ins of the issued certificate and its CA
    inner = certs_only(chain)
    enveloped = envelope(inner, device.certificate, cipher=ContentCipher.AES128_CBC)

    async def run(call: Callable[[], object]) -> object:
        return call()

    def sign_reply() -> Awaitable[bytes]:
        attributes = scep_attributes(
            message_type=MessageType.CERT_REP,
            transaction_id=message.transaction_id,
            sender_nonce=os.urandom(16),
            recipient_nonce=message.sender_nonce,
            pki_status=PkiStatus.SUCCESS,
        )
        return sign_data(signer, ra.certificate, enveloped, attributes=attributes)

    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("read the header (unverified attributes)", lambda: run(lambda: unverified_signed_attributes(request))),
        ("verify the SignedData (parse_signed_data)", lambda: run(lambda: parse_signed_data(request))),
        ("read the SCEP attributes", lambda: run(lambda: read_scep_attributes(signed.signed_attributes))),
        ("name the envelope's cipher", lambda: run(lambda: envelope_cipher(signed.content))),
        ("decrypt the envelope (RA key)", lambda: decrypt_enveloped(signed.content, signer, ra.certificate)),
        ("parse the CSR (ca.csr)", lambda: run(lambda: parse_csr(csr_der))),
        ("certs-only PKCS#7 of the certificate + CA", lambda: run(lambda: certs_only(chain))),
        ("envelope it to the device", lambda: run(lambda: envelope(inner, device.certificate))),
        ("sign the CertRep (RA key)", sign_reply),
    ]
    bare: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("bare RSA-2048 decrypt (PKCS#1 v1.5)", lambda: run(lambda: ra.key.decrypt(_ct, _pkcs1))),
        ("bare RSA-2048 sign (SHA-256)", lambda: run(lambda: ra.key.sign(b"x" * 200, _pkcs1, hashes.SHA256()))),
    ]
    _ct = ra.key.public_key().encrypt(os.urandom(16), padding.PKCS1v15())
    total = 0.0
    print(f"CPU ms per call, {rounds} calls each (process time, executor threads included)\n")
    print("| step | ms |\n|---|---:|")
    for name, step in steps:
        ms = await cpu_ms(rounds, step)
        total += ms
        print(f"| {name} | {ms:.3f} |")
    print(f"| **sum of the SCEP steps (no issuance, no HTTP, no store)** | **{total:.3f}** |")
    for name, step in bare:
        print(f"| ({name}, inside the steps above) | {await cpu_ms(rounds, step):.3f} |")


_pkcs1 = padding.PKCS1v15()

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    asyncio.run(main(parser.parse_args().rounds))
