"""A root whose key is on a token (SoftHSM2) revokes one of its CAs: `tetra ca revoke` and
`tetra crl generate --ca ROOT` sign its ARL and OCSP answers there, on SQLite and PostgreSQL (CAL-02)."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import select

from ca.authorities.model import Authority, Kind
from ca.authorities.store import AuthorityStore
from ca.hierarchy import CAProfile, create_intermediate, create_root
from ca.keys import generate_private_key
from ca.revocation.tables import crls, ocsp_responses
from ca.signers.pkcs11 import Pkcs11Signer, generate_token_key
from ca.store.db import Database
from server.cli import main
from tests.hsm.conftest import fresh_label, token_uri
from tests.pkilint_check import assert_certificate_lints_clean, assert_crl_lints_clean, assert_ocsp_lints_clean


async def _register(db_url: str, root: x509.Certificate, child: x509.Certificate) -> None:
    """The token root and a CA it signed, as `ca import` or a rollover would register them."""
    db = Database(db_url)
    now = dt.datetime.now(dt.UTC)
    try:
        store = AuthorityStore(db)
        root_der, child_der = root.public_bytes(Encoding.DER), child.public_bytes(Encoding.DER)
        await store.add(Authority("hsm-root", "hsm-root", 1, Kind.ROOT, None, root_der, None, now, now), None)
        await store.add(Authority("hsm-ca", "hsm-ca", 1, Kind.ISSUING, "hsm-root", child_der, None, now, now), None)
    finally:
        await db.close()


async def _published(db_url: str) -> tuple[list[bytes], list[bytes]]:
    db = Database(db_url)
    try:
        arls = await db.read(
            lambda c: [bytes(r[0]) for r in c.execute(select(crls.c.der).where(crls.c.issuer == "hsm-root"))]
        )
        answers = await db.read(
            lambda c: [
                bytes(r[0])
                for r in c.execute(select(ocsp_responses.c.der).where(ocsp_responses.c.issuer == "hsm-root"))
            ]
        )
        return arls, answers
    finally:
        await db.close()


def test_token_root_signs_its_arl_and_ocsp_answers(
    ca_dir: Path,
    db_url: str,
    softhsm_module: str,
    softhsm_token: str,
    softhsm_pin: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CAL-02: a wrong PIN is refused in one line before anything changes; with the right one
    the revocation is recorded and the token root's ARL and OCSP answers verify and lint clean;
    renewing them takes a higher CRL number."""
    uri = token_uri(softhsm_token, fresh_label("root"))
    generate_token_key(softhsm_module, uri, "ec-p256", softhsm_pin)
    signer = Pkcs11Signer.open_blocking("hsm-root", softhsm_module, uri, softhsm_pin)
    try:
        root = create_root(CAProfile("Token Root", "Tetra", validity_days=7300), signer.private_key())
        child = create_intermediate(
            CAProfile("Token Issuing CA", "Tetra", path_length=0),
            generate_private_key("ec-p256").public_key(),
            root,
            signer.private_key(),
        )
    finally:
        asyncio.run(signer.close())
    assert_certificate_lints_clean(child.public_bytes(Encoding.DER), "pkix")
    asyncio.run(_register(db_url, root, child))
    monkeypatch.setenv("TETRA_DATABASE__URL", db_url)
    config = ["--config", str(ca_dir / "tetra.toml")]
    token = ["--parent-pkcs11-uri", uri, "--parent-module", softhsm_module, "--parent-pin-env", "ROOT_PIN"]
    revoke = ["ca", "revoke", "hsm-ca", "--reason", "cACompromise", *token, *config]

    monkeypatch.setenv("ROOT_PIN", "0000")
    assert main(revoke) == 2
    err = capsys.readouterr().err
    assert err.startswith("tetra: error: the parent's key:") and err.count("\n") == 1, err
    assert asyncio.run(_published(db_url)) == ([], [])

    monkeypatch.setenv("ROOT_PIN", softhsm_pin)
    assert main(revoke) == 0
    assert "hsm-root: ARL number" in capsys.readouterr().out
    [arl_der], answers = asyncio.run(_published(db_url))
    assert len(answers) == 2
    assert_crl_lints_clean(arl_der, "pkix")
    arl = x509.load_der_x509_crl(arl_der)
    assert arl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    entry = arl.get_revoked_certificate_by_serial_number(child.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.ca_compromise
    for der in answers:
        assert_ocsp_lints_clean(der)
        response = ocsp.load_der_ocsp_response(der)
        assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
        assert response.serial_number == child.serial_number

    assert main(["crl", "generate", "--ca", "hsm-root", *token, *config]) == 0
    assert "hsm-root: ARL number" in capsys.readouterr().out
    arls, _ = asyncio.run(_published(db_url))
    numbers = [
        x509.load_der_x509_crl(d).extensions.get_extension_for_class(x509.CRLNumber).value.crl_number for d in arls
    ]
    assert max(numbers) > arl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
