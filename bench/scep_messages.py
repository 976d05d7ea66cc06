"""The PKCSReq messages bench_scep.py sends, built with the tests' SCEP client
(tests/scep_client.py), and the full check of a sample CertRep. Nothing here is timed.
"""

from __future__ import annotations

from typing import Protocol

from cryptography import x509
from scep_provisional import cert_rep_status, pkcsreq
from scep_setup import Device, pkcsreq_request


class Target(Protocol):
    path: str
    recipient: x509.Certificate | None


async def build_messages(devices: list[Device], server: Target) -> list[bytes]:
    """One raw PKIOperation POST per device, encrypted to `server`'s recipient certificate."""
    assert server.recipient is not None
    out = []
    for device in devices:
        message = await pkcsreq(device.key(), device.signer(), device.csr(), server.recipient)
        out.append(pkcsreq_request(server.path, message))
    return out


def sample_problem(body: bytes, device: Device, recipient: x509.Certificate | None) -> str | None:
    status = cert_rep_status(body)
    return None if status == "SUCCESS" else status
