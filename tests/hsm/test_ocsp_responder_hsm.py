"""The delegated OCSP responder's key on a SoftHSM2 token: responses signed inside the token,
and one responder certificate shared by every process that opens the same key."""

from __future__ import annotations

import secrets

import pytest
from cryptography.x509 import ocsp

from ca.revocation.ocsp import OcspService
from ca.revocation.pointers import install_pointers
from ca.revocation.settings import RESPONDER_SIGNER, ResponderKeySettings
from ca.service import CertificateAuthority
from ca.signers.pkcs11 import generate_token_key
from ca.signers.registry import SignerSpec
from tests.hsm.conftest import fresh_label, token_uri
from tests.revocation_support import check_ocsp, crl_settings, issue, ocsp_settings, query


async def test_responder_key_on_the_token(
    ca: CertificateAuthority,
    softhsm_module: str,
    softhsm_token: str,
    softhsm_pin: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OCSP-11 with the key in the HSM: the certificate certifies the token key, responses
    verify and lint clean, and a second process reuses the same responder certificate."""
    uri = token_uri(softhsm_token, fresh_label("ec-p256"))
    generate_token_key(softhsm_module, uri, "ec-p256", softhsm_pin)
    env = f"TETRA_TEST_OCSP_PIN_{secrets.token_hex(4)}"
    monkeypatch.setenv(env, softhsm_pin)
    spec = SignerSpec(RESPONDER_SIGNER, "pkcs11", module=softhsm_module, uri=uri, pin_env=env)
    key = ResponderKeySettings(signer=spec)
    await install_pointers(ca, crl_settings())
    first, second = OcspService(ca, ocsp_settings(key=key)), OcspService(ca, ocsp_settings(key=key))
    try:
        await first.start()
        first.presign_issued = True
        issued = await issue(ca)
        await first.poll_feed()
        answer = await first.respond(query(issued.certificate, issued.chain[0], nonce=b"h" * 16))
        response = check_ocsp(answer.der, issued.chain[0])
        assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
        identity = await first.responders.identity("issuing-ca")
        assert identity.certificate is not None
        assert identity.certificate.public_key() == identity.signer.public_key()
        await second.start()
        again = await second.responders.identity("issuing-ca")
        assert again.certificate is not None
        assert again.certificate.serial_number == identity.certificate.serial_number
    finally:
        await first.close()
        await second.close()
