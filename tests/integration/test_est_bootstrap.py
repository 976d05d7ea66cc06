"""IDevID bootstrap: a device's factory certificate (issued by a maker's CA configured as the
profile's `trust_anchors`) authorises its first simpleenroll under that label; the certificate
Tetra issued then authorises simplereenroll, which the factory certificate never does."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from tests.integration.est_support import (
    EstServer,
    certificates,
    curl,
    device_certificate,
    enroll_args,
    est_server,
    openssl_csr,
    verify_chain,
    write_pem,
)
from tests.pkilint_check import assert_certificate_lints_clean

pytestmark = pytest.mark.slow


@pytest.fixture
def server(ca_dir: Path, tmp_path: Path) -> Iterator[EstServer]:
    yield from est_server(ca_dir, tmp_path)


def test_factory_certificate_then_tetra_certificate(server: EstServer, tmp_path: Path) -> None:
    """EST-14: the IDevID enrolls under its label, never renews (EST-05); the issued LDevID renews itself."""
    assert server.factory is not None
    idevid, idevid_key = device_certificate(*server.factory, "SN-0042")
    idevid_pem = write_pem(tmp_path / "idevid.pem", idevid)
    idevid_key_file = tmp_path / "idevid.key"
    idevid_key_file.write_bytes(
        idevid_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    factory_tls = ("--cert", str(idevid_pem), "--key", str(idevid_key_file))
    key, csr = openssl_csr(tmp_path, "sn-0042.devices.example.com", sans="DNS:sn-0042.devices.example.com")
    reply = curl(server, tmp_path, f"{server.url}/factory/simpleenroll", *factory_tls, *enroll_args(csr))
    assert reply.status == 200, reply.text
    (ldevid,) = certificates(reply)
    verify_chain(server, tmp_path, ldevid)
    assert_certificate_lints_clean(ldevid.public_bytes(serialization.Encoding.DER))

    # The factory certificate does not renew anything.
    before = server.counts()
    reply = curl(server, tmp_path, f"{server.url}/factory/simplereenroll", *factory_tls, *enroll_args(csr))
    assert reply.status == 403 and "certificate being renewed" in reply.text
    assert server.counts() == before

    # The issued (LDevID) certificate renews itself.
    ldevid_tls = ("--cert", str(write_pem(tmp_path / "ldevid.pem", ldevid)), "--key", str(key))
    reply = curl(server, tmp_path, f"{server.url}/factory/simplereenroll", *ldevid_tls, *enroll_args(csr))
    assert reply.status == 200, reply.text
    (renewed,) = certificates(reply)
    assert renewed.subject == ldevid.subject and renewed.serial_number != ldevid.serial_number
    verify_chain(server, tmp_path, renewed)
