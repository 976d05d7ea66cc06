"""The same issuance path with the issuing CA key on a real SoftHSM2 token (both stores).

The issuing CA's key is generated on the token (non-extractable) and certified
by the demo root; the server config names it by RFC 7512 URI with the PIN
from the environment. Issuance, lint and revocation behave as with software keys.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Issued, Requester
from ca.hierarchy import CAProfile, create_intermediate
from ca.service import CertificateAuthority
from ca.signers.pkcs11 import Pkcs11Signer, generate_token_key
from ca.signers.software import load_encrypted_key
from server.wiring import build_ca, read_config
from tests.helpers import enroll, make_csr
from tests.hsm.conftest import fresh_label, token_uri
from tests.pkilint_check import assert_certificate_lints_clean

OPERATOR = Requester("hsm-test", AuthMethod.OPERATOR)


def add_hsm_issuer(ca_dir: Path, module: str, uri: str, pin: str, spec: str) -> None:
    """Certify a token key as issuing CA 'hsm-ca' and point a 'hsm-tls' profile at it."""
    generate_token_key(module, uri, spec, pin)
    signer = Pkcs11Signer.open_blocking("probe", module, uri, pin)
    passphrase = (ca_dir / "secrets" / "passphrase").read_bytes().strip()
    root_key = load_encrypted_key(ca_dir / "keys" / "root.key", passphrase)
    root = x509.load_pem_x509_certificate((ca_dir / "ca" / "root.pem").read_bytes())
    cert = create_intermediate(CAProfile("Tetra HSM Issuing CA", "Tetra", 365, 0), signer.public_key(), root, root_key)
    (ca_dir / "ca" / "hsm-ca.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    os.environ["TETRA_TEST_HSM_PIN"] = pin
    with (ca_dir / "tetra.toml").open("a") as out:
        out.write(
            f'\n[signers.hsm]\nbackend = "pkcs11"\nmodule = "{module}"\nuri = "{uri}"\npin_env = "TETRA_TEST_HSM_PIN"\n'
            '\n[issuers.hsm-ca]\ncertificate = "ca/hsm-ca.pem"\nsigner = "hsm"\n'
        )
    profile = (ca_dir / "profiles" / "tls-server.toml").read_text()
    (ca_dir / "profiles" / "hsm-tls.toml").write_text('issuer = "hsm-ca"\n' + profile)


@pytest.fixture(params=["ec-p256", "ec-p384", "rsa-2048"])
async def hsm_ca(
    request: pytest.FixtureRequest,
    ca_dir: Path,
    db_url: str,
    softhsm_module: str,
    softhsm_token: str,
    softhsm_pin: str,
) -> AsyncIterator[CertificateAuthority]:
    uri = token_uri(softhsm_token, fresh_label(request.param))
    add_hsm_issuer(ca_dir, softhsm_module, uri, softhsm_pin, request.param)
    authority = await build_ca(read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": db_url}))
    try:
        yield authority
    finally:
        await authority.close()


async def test_issue_on_token_lints_verifies_and_revokes(hsm_ca: CertificateAuthority) -> None:
    csr, _ = make_csr(["hsm.example.com", "www.hsm.example.com"])
    request = enrollment_from_csr(csr, protocol="cli", profile_name="hsm-tls", requester=OPERATOR)
    outcome = await enroll(hsm_ca, request)
    assert isinstance(outcome, Issued) and outcome.issuer == "hsm-ca"
    outcome.certificate.verify_directly_issued_by(hsm_ca.issuers["hsm-ca"].certificate)
    assert_certificate_lints_clean(outcome.certificate.public_bytes(Encoding.DER), "cabf-serverauth")
    record = await hsm_ca.certificates.get(outcome.record_id)
    assert record is not None and record.tbs == outcome.certificate.tbs_certificate_bytes
    revoked = await hsm_ca.revoke("hsm-ca", outcome.certificate.serial_number, "superseded", requester="t")
    assert revoked.status == "revoked"
    assert (await hsm_ca.audit.verify()).ok


async def test_concurrent_issuance_on_one_token(hsm_ca: CertificateAuthority) -> None:
    """Token calls are serialised on one thread; 16 concurrent issuances all succeed."""
    import asyncio

    async def one(i: int) -> Issued:
        csr, _ = make_csr([f"n{i}.hsm.example.com"])
        req = enrollment_from_csr(csr, protocol="cli", profile_name="hsm-tls", requester=OPERATOR)
        outcome = await enroll(hsm_ca, req)
        assert isinstance(outcome, Issued)
        return outcome

    results = await asyncio.gather(*(one(i) for i in range(16)))
    for issued in results:
        issued.certificate.verify_directly_issued_by(hsm_ca.issuers["hsm-ca"].certificate)
    assert len({r.certificate.serial_number for r in results}) == 16
