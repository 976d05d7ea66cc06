"""`tetra ca revoke` and a root's ARL and OCSP answers, through the whole server (pytest-aiohttp)
and the real `tetra` command, on SQLite and PostgreSQL (CAL-02)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from sqlalchemy import func, select

from ca.authorities.model import Authority
from ca.authorities.store import AuthorityStore
from ca.revocation.tables import crls, ocsp_responses
from ca.store.db import Database
from ca.store.tables import audit_log, certificates
from server.app import build_app
from server.cli import main
from server.config import ServerConfig
from server.wiring import read_config
from tests.helpers import make_csr
from tests.integration.operator_api import MANAGE_ON_HTTP, serve_on_http
from tests.integration.rollover_support import parent_key
from tests.pkilint_check import assert_crl_lints_clean, assert_ocsp_lints_clean
from tests.revocation_support import check_crl, check_ocsp, request_der

Client = Callable[..., Awaitable[TestClient[Any, Any]]]
OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}


@pytest.fixture
def revoke_config(ca_dir: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> ServerConfig:
    monkeypatch.setenv("TETRA_DATABASE__URL", db_url)  # for the `tetra` commands run alongside
    return read_config(
        ca_dir / "tetra.toml",
        environ={
            "TETRA_DATABASE__URL": db_url,
            "TETRA_SERVER__PROTOCOLS": '["ocsp","crl"]',
            **MANAGE_ON_HTTP,
            "TETRA_OCSP__RESPONDER_COUNTRY": "US",
            "TETRA_CRL__BATCH_DELAY": "1s",
        },
    )


def _tetra(ca_dir: Path, *args: str) -> list[str]:
    return [*args, "--config", str(ca_dir / "tetra.toml")]


def _pem(ca_dir: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((ca_dir / "ca" / f"{name}.pem").read_bytes())


async def _issue(client: TestClient[Any, Any], auth: dict[str, str], name: str) -> x509.Certificate:
    csr, _ = make_csr([name])
    resp = await client.post(
        "/api/v1/enroll", headers=auth, json={"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server"}
    )
    assert resp.status == 201, await resp.text()
    return x509.load_pem_x509_certificate((await resp.json())["certificate"].encode())


async def _ocsp(client: TestClient[Any, Any], cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    resp = await client.post("/ocsp", data=request_der(cert, issuer), headers=OCSP_REQUEST)
    assert resp.status == 200
    return await resp.read()


async def _crl(client: TestClient[Any, Any], name: str) -> x509.CertificateRevocationList:
    resp = await client.get(f"/crl/{name}.crl")
    assert resp.status == 200, (name, resp.status, await resp.text())
    return x509.load_der_x509_crl(await resp.read())


async def _openssl_ocsp(ca_dir: Path, url: str) -> str:
    """`openssl ocsp` about the intermediate, its answer verified against the root."""
    root, intermediate = ca_dir / "ca" / "root.pem", ca_dir / "ca" / "issuing-ca.pem"
    proc = await asyncio.create_subprocess_exec(
        *("openssl", "ocsp", "-issuer", str(root), "-cert", str(intermediate), "-url", url),
        *("-CAfile", str(root), "-VAfile", str(root), "-no_nonce"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


def _arl_number(arl: x509.CertificateRevocationList) -> int:
    return arl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def _check_arl(arl: x509.CertificateRevocationList, root: x509.Certificate) -> None:
    """Signed by the root, lints clean, a critical onlyContainsCACerts IDP and the root's AKI."""
    assert_crl_lints_clean(arl.public_bytes(Encoding.DER), "pkix")
    assert arl.is_signature_valid(root.public_key())  # type: ignore[arg-type]
    assert arl.issuer.public_bytes() == root.subject.public_bytes()
    idp = arl.extensions.get_extension_for_class(x509.IssuingDistributionPoint)
    assert idp.critical and idp.value.only_contains_ca_certs
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert arl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == ski
    assert arl.next_update_utc is not None and arl.next_update_utc - arl.last_update_utc > dt.timedelta(days=80)


async def _wait_refused(client: TestClient[Any, Any], auth: dict[str, str], name: str) -> int:
    """Issuance refused once the server's registry watch has read the revocation (within a second)."""
    deadline = time.monotonic() + 5
    while True:
        csr, _ = make_csr([name])
        body = {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server"}
        resp = await client.post("/api/v1/enroll", headers=auth, json=body)
        if resp.status != 201:
            return resp.status
        assert time.monotonic() < deadline, "still issuing from the revoked CA"
        await asyncio.sleep(0.2)


async def _count(db_url: str, query: Any) -> int:
    db = Database(db_url)
    try:
        return int(await db.read(lambda c: c.execute(query).scalar_one()))
    finally:
        await db.close()


async def test_revoked_intermediate_is_on_the_arl_and_ocsp_and_its_leaves_stay_answered(
    aiohttp_client: Client,
    revoke_config: ServerConfig,
    ca_dir: Path,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """CAL-02: after `tetra ca revoke issuing-ca --reason keyCompromise --force` with the root's key,
    /crl/root.crl lists the intermediate with its reason, signed by the root and lint clean;
    `openssl ocsp` about the intermediate says revoked and verifies against the root; issuance
    under it is refused with nothing stored; a leaf issued before stays 'good' over OCSP, one
    revoked afterwards is answered revoked and listed on the intermediate's own CRL (signed by
    its own key), and a restarted server answers its leaves with the CA's own key; `tetra crl
    generate --ca root` renews the ARL with a higher number."""
    client, auth = await serve_on_http(aiohttp_client, build_app(revoke_config))
    root, intermediate = _pem(ca_dir, "root"), _pem(ca_dir, "issuing-ca")
    kept = await _issue(client, auth, "kept.example.com")
    later = await _issue(client, auth, "later.example.com")
    url = str(client.make_url("/ocsp"))
    unsigned = ocsp.load_der_ocsp_response(await _ocsp(client, intermediate, root))
    assert unsigned.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED  # the root has signed nothing yet

    revoke = _tetra(ca_dir, "ca", "revoke", "issuing-ca", "--reason", "keyCompromise", "--force", *parent_key(ca_dir))
    assert await asyncio.to_thread(main, revoke) == 0
    out = capsys.readouterr().out
    assert "issuing-ca revoked (keyCompromise)" in out and "root: ARL number" in out

    arl = await _crl(client, "root")
    _check_arl(arl, root)
    entry = arl.get_revoked_certificate_by_serial_number(intermediate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise

    text = await _openssl_ocsp(ca_dir, url)
    assert "Response verify OK" in text and "issuing-ca.pem: revoked" in text and "Reason: keyCompromise" in text, text
    answer = await client.post("/ocsp", data=request_der(intermediate, root, "sha256"), headers=OCSP_REQUEST)
    der = await answer.read()
    assert_ocsp_lints_clean(der)
    response = ocsp.load_der_ocsp_response(der)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.next_update_utc is not None and response.next_update_utc == arl.next_update_utc

    assert await _wait_refused(client, auth, "refused.example.com") == 503
    before = await _count(db_url, select(func.count()).select_from(certificates))
    assert await _wait_refused(client, auth, "refused-again.example.com") == 503
    assert await _count(db_url, select(func.count()).select_from(certificates)) == before  # nothing stored

    kept_answer = check_ocsp(await _ocsp(client, kept, intermediate), intermediate)
    assert kept_answer.certificate_status == ocsp.OCSPCertStatus.GOOD
    resp = await client.post(
        "/api/v1/revoke", headers=auth, json={"serial": format(later.serial_number, "x"), "reason": "superseded"}
    )
    assert resp.status == 200, await resp.text()
    deadline = time.monotonic() + 5
    while True:
        status = check_ocsp(await _ocsp(client, later, intermediate), intermediate).certificate_status
        own = await _crl(client, "issuing-ca")
        if status == ocsp.OCSPCertStatus.REVOKED and own.get_revoked_certificate_by_serial_number(later.serial_number):
            break
        assert time.monotonic() < deadline, "the revoked CA's leaf is not answered revoked"
        await asyncio.sleep(0.2)
    check_crl(own.public_bytes(Encoding.DER), intermediate)
    assert own.get_revoked_certificate_by_serial_number(kept.serial_number) is None

    # A restarted server cannot have the revoked CA certify a new responder: its own key answers.
    restarted = await aiohttp_client(build_app(revoke_config))
    fresh = await restarted.post(
        "/ocsp", data=request_der(kept, intermediate, nonce=b"0123456789abcdef"), headers=OCSP_REQUEST
    )
    answered = check_ocsp(await fresh.read(), intermediate, delegated=False)
    assert answered.certificate_status == ocsp.OCSPCertStatus.GOOD

    renew = _tetra(ca_dir, "crl", "generate", "--ca", "root", *parent_key(ca_dir))
    assert await asyncio.to_thread(main, renew) == 0
    assert "root: ARL number" in capsys.readouterr().out
    await asyncio.sleep(1.1)  # a served CRL is checked against the store once a second
    renewed = await _crl(client, "root")
    _check_arl(renewed, root)
    assert _arl_number(renewed) > _arl_number(arl)
    assert renewed.get_revoked_certificate_by_serial_number(intermediate.serial_number) is not None


async def _registry(db_url: str) -> tuple[Authority | None, int, int, int]:
    """The intermediate's row, 'ca.revoked' audit events, and what the root has published."""
    db = Database(db_url)
    try:
        record = await AuthorityStore(db).get("issuing-ca")
        events = await db.read(
            lambda c: c.execute(select(func.count()).where(audit_log.c.action == "ca.revoked")).scalar_one()
        )
        arls = await db.read(lambda c: c.execute(select(func.count()).where(crls.c.issuer == "root")).scalar_one())
        answers = await db.read(
            lambda c: c.execute(select(func.count()).where(ocsp_responses.c.issuer == "root")).scalar_one()
        )
        return record, int(events), int(arls), int(answers)
    finally:
        await db.close()


def test_bad_revocations_change_nothing(
    revoke_config: ServerConfig, ca_dir: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """CAL-02: revoking a root, an unknown name, the last active CA without --force, without the
    root's key, with a wrong one or with an unknown reason: one line, exit 2, and the registry,
    the audit log and the root's publications as they were. Then it works once, and twice is refused."""
    revoke = ["ca", "revoke", "issuing-ca", "--reason", "keyCompromise"]
    refusals = {
        "is a root": _tetra(
            ca_dir, "ca", "revoke", "root", "--reason", "keyCompromise", "--force", *parent_key(ca_dir)
        ),
        "no CA generation named 'nope'": _tetra(ca_dir, "ca", "revoke", "nope", "--reason", "superseded"),
        "profiles ": _tetra(ca_dir, *revoke, *parent_key(ca_dir)),
        "give the root's key": _tetra(ca_dir, *revoke, "--force"),
        "is not the key of": _tetra(ca_dir, *revoke, "--force", *parent_key(ca_dir, "keys/issuing-ca.key")),
        "unknown revocation reason": _tetra(ca_dir, "ca", "revoke", "issuing-ca", "--reason", "bored", "--force"),
        "between 1 and 365": _tetra(ca_dir, *revoke, "--force", "--next-update-days", "400", *parent_key(ca_dir)),
    }
    assert main(_tetra(ca_dir, "ca", "list")) == 0  # the config's CAs registered
    capsys.readouterr()
    before = asyncio.run(_registry(db_url))
    assert before[0] is not None and before[0].revoked_at is None and before[1:] == (0, 0, 0)
    for expected, argv in refusals.items():
        assert main(argv) == 2, expected
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1 and "Traceback" not in err, (expected, err)
        assert asyncio.run(_registry(db_url)) == before, expected

    assert main(_tetra(ca_dir, *revoke, "--force", *parent_key(ca_dir))) == 0
    record, events, arls, answers = asyncio.run(_registry(db_url))
    assert record is not None and record.revocation_reason == "keyCompromise" and record.revoked_at is not None
    assert (events, arls, answers) == (1, 1, 2)  # one ARL; SHA-1 and SHA-256 CertID answers
    capsys.readouterr()
    assert main(_tetra(ca_dir, *revoke, "--force", *parent_key(ca_dir))) == 2
    assert "already revoked (keyCompromise" in capsys.readouterr().err
    assert main(_tetra(ca_dir, "crl", "generate", "--ca", "root")) == 2
    assert "exactly one of --parent-key" in capsys.readouterr().err
    assert asyncio.run(_registry(db_url))[1:] == (1, 1, 2)


async def _register_external(db_url: str) -> x509.Certificate:
    """An issuing CA whose parent is not ours (as `ca import` registers one): parent None."""
    from ca.authorities.model import Kind
    from ca.hierarchy import CAProfile, create_intermediate, create_root
    from ca.keys import generate_private_key

    outside_key = generate_private_key("ec-p256")
    outside = create_root(CAProfile("Somebody Else's Root", validity_days=7300), outside_key)
    cert = create_intermediate(
        CAProfile("Imported CA", path_length=0), generate_private_key("ec-p256").public_key(), outside, outside_key
    )
    db = Database(db_url)
    now = dt.datetime.now(dt.UTC)
    try:
        der = cert.public_bytes(Encoding.DER)
        await AuthorityStore(db).add(Authority("ext-ca", "ext-ca", 1, Kind.ISSUING, None, der, None, now, now), None)
    finally:
        await db.close()
    return cert


def test_external_parent_changes_the_registry_only(
    revoke_config: ServerConfig, ca_dir: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """CAL-02: a CA an outside root signed is revoked in the registry only (nothing for our root to
    sign, so a root key given is refused), and the output says who must revoke its certificate."""
    cert = asyncio.run(_register_external(db_url))
    revoke = _tetra(ca_dir, "ca", "revoke", "ext-ca", "--reason", "superseded")
    assert main([*revoke, *parent_key(ca_dir)]) == 2
    assert "not signed by a root of this CA" in capsys.readouterr().err
    assert main(revoke) == 0
    out = capsys.readouterr().out
    assert f"CN=Somebody Else's Root must revoke serial {cert.serial_number:x}" in out
    record, events, arls, answers = asyncio.run(_registry(db_url))
    assert record is not None and record.revoked_at is None  # issuing-ca untouched
    assert (events, arls, answers) == (1, 0, 0)


async def _register_staged(ca_dir: Path, db_url: str) -> x509.Certificate:
    """A second generation of issuing-ca, signed by the demo root, staged to start in a week."""
    from ca.authorities.model import KeyLocation, Kind
    from ca.hierarchy import CAProfile, create_intermediate
    from ca.keys import generate_private_key
    from ca.signers.software import load_encrypted_key, save_encrypted_key

    passphrase = (ca_dir / "secrets" / "passphrase").read_bytes().strip()
    root_key = load_encrypted_key(ca_dir / "keys" / "root.key", passphrase)
    key = generate_private_key("ec-p256")
    save_encrypted_key(key, ca_dir / "keys" / "issuing-ca.2.key", passphrase)
    cert = create_intermediate(
        CAProfile("Tetra Demo Issuing CA 2", "Tetra", validity_days=1000, path_length=0),
        key.public_key(),
        _pem(ca_dir, "root"),
        root_key,
    )
    now = dt.datetime.now(dt.UTC)
    where = KeyLocation("software", key_file="keys/issuing-ca.2.key", passphrase_file="secrets/passphrase")
    der = cert.public_bytes(Encoding.DER)
    record = Authority(
        "issuing-ca.2", "issuing-ca", 2, Kind.ISSUING, "root", der, where, now + dt.timedelta(days=7), now
    )
    db = Database(db_url)
    try:
        await AuthorityStore(db).add(record, None)
    finally:
        await db.close()
    return cert


def test_a_staged_generation_is_revoked_without_force(
    revoke_config: ServerConfig, ca_dir: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """CAL-02: a generation no profile issues from yet needs no --force; the root's ARL lists it
    alone, and the root answers OCSP for both CAs it signed: revoked for it, good for the other."""
    assert main(_tetra(ca_dir, "ca", "list")) == 0
    staged = asyncio.run(_register_staged(ca_dir, db_url))
    revoke = _tetra(ca_dir, "ca", "revoke", "issuing-ca.2", "--reason", "superseded", *parent_key(ca_dir))
    assert main(revoke) == 0
    assert "root: ARL number" in capsys.readouterr().out

    async def published() -> tuple[bytes, dict[int, str]]:
        db = Database(db_url)
        try:
            arl = await db.read(lambda c: c.execute(select(crls.c.der).where(crls.c.issuer == "root")).scalar_one())
            rows = await db.read(
                lambda c: c.execute(
                    select(ocsp_responses.c.der, ocsp_responses.c.status).where(ocsp_responses.c.issuer == "root")
                ).all()
            )
            statuses = {ocsp.load_der_ocsp_response(bytes(r[0])).serial_number: r[1] for r in rows}
            assert len(rows) == 4  # two CA certificates, SHA-1 and SHA-256 CertIDs
            for row in rows:
                assert_ocsp_lints_clean(bytes(row[0]))
            return bytes(arl), statuses
        finally:
            await db.close()

    arl_der, statuses = asyncio.run(published())
    arl = x509.load_der_x509_crl(arl_der)
    _check_arl(arl, _pem(ca_dir, "root"))
    assert [e.serial_number for e in arl] == [staged.serial_number]
    entry = arl.get_revoked_certificate_by_serial_number(staged.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.superseded
    assert statuses == {staged.serial_number: "revoked", _pem(ca_dir, "issuing-ca").serial_number: "good"}
