"""ACME end to end through the real app (aiohttp test client), with real validation on loopback."""

from __future__ import annotations

from cryptography import x509

from ca.store.repositories import CertificateFilter
from server.app import CA
from tests.pkilint_check import assert_certificate_lints_clean
from tests.unit.protocols.acme.support import AcmeEnv

pytest_plugins = ["tests.unit.protocols.acme.support"]

NAMES = ["www.example.com", "example.com"]


async def test_http01_issuance_download_and_revocation(acme_env: AcmeEnv) -> None:
    """Happy path: account, order, http-01, finalize, download, revoke (RFC 8555 §7)."""
    client = acme_env.client()
    directory = await client.load_directory()
    assert {"newNonce", "newAccount", "newOrder", "revokeCert", "keyChange", "renewalInfo"} <= set(directory)
    assert directory["meta"]["externalAccountRequired"] is False
    resp = await client.register(contact=["mailto:ops@example.com"])
    assert resp.status == 201, resp.body
    _, pem, _ = await client.issue(acme_env, NAMES)
    certs = x509.load_pem_x509_certificates(pem.encode())
    leaf = certs[0]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(sans.get_values_for_type(x509.DNSName)) == sorted(NAMES)
    leaf.verify_directly_issued_by(certs[1])
    from cryptography.hazmat.primitives.serialization import Encoding

    assert_certificate_lints_clean(leaf.public_bytes(Encoding.DER), "cabf-serverauth")
    ca = acme_env.app[CA]
    issued = await ca.certificates.list(CertificateFilter(protocol="acme"))
    assert [r.serial for r in issued] == [leaf.serial_number]
    from protocols.acme.b64 import b64e

    resp = await client.post(
        directory["revokeCert"], {"certificate": b64e(leaf.public_bytes(Encoding.DER)), "reason": 4}
    )
    assert resp.status == 200, resp.body
    record = await ca.certificates.by_serial(issued[0].issuer, leaf.serial_number)
    assert record is not None and record.status == "revoked"
    resp = await client.post(directory["revokeCert"], {"certificate": b64e(leaf.public_bytes(Encoding.DER))})
    assert resp.status == 400 and resp.problem_type == "alreadyRevoked"
