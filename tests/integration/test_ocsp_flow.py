"""OCSP through the whole server (pytest-aiohttp), on SQLite and PostgreSQL: POST and GET,
nginx's stapling request, caching headers, revocation latency, and every bad input."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ca.revocation.model import CertId
from server.app import CA, build_app
from server.config import ServerConfig
from server.wiring import build_ca, read_config
from tests.helpers import make_csr
from tests.integration.operator_api import MANAGE_ON_HTTP, serve_on_http
from tests.revocation_support import check_ocsp, multi_request_der, request_der

OCSP_TYPE = {"Content-Type": "application/ocsp-request"}
Client = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def revocation_config(ca_dir: Path, db_url: str) -> ServerConfig:
    return read_config(
        ca_dir / "tetra.toml",
        environ={
            "TETRA_DATABASE__URL": db_url,
            "TETRA_SERVER__PROTOCOLS": '["ocsp","crl"]',
            **MANAGE_ON_HTTP,
            "TETRA_OCSP__RESPONDER_COUNTRY": "US",
            "TETRA_OCSP__MAX_CERTS": "4",
            "TETRA_CRL__BATCH_DELAY": "1s",
        },
    )


async def _issue(
    client: TestClient[Any, Any], auth: dict[str, str], name: str = "ocsp.example.com"
) -> tuple[x509.Certificate, x509.Certificate]:
    csr, _ = make_csr([name])
    resp = await client.post(
        "/api/v1/enroll", headers=auth, json={"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server"}
    )
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    return x509.load_pem_x509_certificate(body["certificate"].encode()), x509.load_pem_x509_certificates(
        body["chain"].encode()
    )[0]


async def _post(client: TestClient[Any, Any], der: bytes) -> bytes:
    resp = await client.post("/ocsp", data=der, headers=OCSP_TYPE)
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/ocsp-response"
    return await resp.read()


def _response_status(der: bytes) -> ocsp.OCSPResponseStatus:
    return ocsp.load_der_ocsp_response(der).response_status


async def test_post_and_get_good_and_never_issued(aiohttp_client: Client, revocation_config: ServerConfig) -> None:
    """OCSP-01, OCSP-07, OCSP-14: POST at the URL certificates carry, GET with the request in
    the path; good for ours (SHA-1 and SHA-256), unknown for a serial never issued."""
    client, auth = await serve_on_http(aiohttp_client, build_app(revocation_config))
    cert, issuer = await _issue(client, auth)
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia if d.access_method.dotted_string.endswith("48.1")] == [
        "http://pki.example.com/ocsp"
    ]
    for hash_name in ("sha1", "sha256"):
        der = request_der(cert, issuer, hash_name)
        assert check_ocsp(await _post(client, der), issuer).certificate_status == ocsp.OCSPCertStatus.GOOD
        path = "/ocsp/" + quote(base64.b64encode(der).decode(), safe="")
        resp = await client.get(path)
        assert resp.status == 200
        assert check_ocsp(await resp.read(), issuer).certificate_status == ocsp.OCSPCertStatus.GOOD
    never = CertId("sha1", *_issuer_hashes(cert, issuer), 0x1234567890ABCDEF)
    answer = await _post(client, multi_request_der([never]))
    assert check_ocsp(answer, issuer).certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def _issuer_hashes(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    return req.issuer_name_hash, req.issuer_key_hash


async def test_nginx_stapling_request(aiohttp_client: Client, revocation_config: ServerConfig) -> None:
    """OCSP-12: nginx sends HTTP/1.0 GET, percent-escaped standard base64, one SHA-1 CertID,
    no nonce; the answer is HTTP 200 with exactly Content-Type: application/ocsp-response
    and the RFC 9919 caching headers (max-age no later than nextUpdate, ETag, Last-Modified,
    Expires); a conditional GET with the ETag gets 304."""
    client, auth = await serve_on_http(aiohttp_client, build_app(revocation_config))
    cert, issuer = await _issue(client, auth)
    await asyncio.sleep(0.6)  # let the feed pre-sign it
    der = request_der(cert, issuer, "sha1")
    path = "/ocsp/" + quote(base64.b64encode(der).decode(), safe="")
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(f"GET {path} HTTP/1.0\r\nHost: pki.example.com\r\n\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), 10)  # HTTP/1.0: the server closes after the answer
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.") and " 200 " in lines[0]
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
    assert headers["content-type"] == "application/ocsp-response"
    response = check_ocsp(body, issuer)
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    max_age = int(headers["cache-control"].split("max-age=")[1].split(",")[0])
    assert response.next_update_utc is not None
    assert 0 < max_age <= (response.next_update_utc.timestamp() - time.time()) + 2
    assert "public" in headers["cache-control"] and headers["etag"].startswith('"')
    assert headers["last-modified"].endswith("GMT") and headers["expires"].endswith("GMT")
    again = await client.get(path, headers={"If-None-Match": headers["etag"]})
    assert again.status == 304


async def test_nonce_is_echoed_over_http(aiohttp_client: Client, revocation_config: ServerConfig) -> None:
    """OCSP-08: a nonce request is signed fresh and echoes the nonce; GET answers to it are not cached."""
    client, auth = await serve_on_http(aiohttp_client, build_app(revocation_config))
    cert, issuer = await _issue(client, auth)
    der = request_der(cert, issuer, nonce=b"0123456789abcdef")
    response = check_ocsp(await _post(client, der), issuer)
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == b"0123456789abcdef"
    resp = await client.get("/ocsp/" + quote(base64.b64encode(der).decode(), safe=""))
    assert resp.headers["Cache-Control"] == "no-store"


async def test_revocation_visible_within_a_second(aiohttp_client: Client, revocation_config: ServerConfig) -> None:
    """OCSP-10: revoked through the API (this process) and by another process (`tetra revoke`
    builds its own CertificateAuthority): each is visible in OCSP within a second."""
    client, auth = await serve_on_http(aiohttp_client, build_app(revocation_config))
    first, issuer = await _issue(client, auth, "one.example.com")
    second, _ = await _issue(client, auth, "two.example.com")
    for cert in (first, second):  # cached as good first
        assert check_ocsp(await _post(client, request_der(cert, issuer)), issuer).certificate_status == (
            ocsp.OCSPCertStatus.GOOD
        )

    async def revoked_within(cert: x509.Certificate, started: float) -> float:
        while True:
            response = ocsp.load_der_ocsp_response(await _post(client, request_der(cert, issuer)))
            if response.certificate_status == ocsp.OCSPCertStatus.REVOKED:
                check_ocsp(response.public_bytes(Encoding.DER), issuer)
                return time.monotonic() - started
            assert time.monotonic() - started < 1.0, "revocation not visible within a second"
            await asyncio.sleep(0.02)

    resp = await client.post(
        "/api/v1/revoke", headers=auth, json={"serial": format(first.serial_number, "x"), "reason": "keyCompromise"}
    )
    assert resp.status == 200
    assert await revoked_within(first, time.monotonic()) < 1.0
    other = await build_ca(revocation_config)
    try:
        await other.revoke("issuing-ca", second.serial_number, "superseded", requester="cli:test")
        started = time.monotonic()
    finally:
        await other.close()
    assert await revoked_within(second, started) < 1.0


async def test_bad_inputs_get_ocsp_errors(aiohttp_client: Client, revocation_config: ServerConfig) -> None:
    """OCSP-05, OCSP-06, OCSP-04: garbage body, truncated request, unsupported CertID hash,
    1,000 certificates at once, a GET path that is not base64, an empty body, a body over
    the limit, an issuer we do not serve."""
    client, auth = await serve_on_http(aiohttp_client, build_app(revocation_config))
    cert, issuer = await _issue(client, auth)
    good = request_der(cert, issuer)
    name_hash, key_hash = _issuer_hashes(cert, issuer)
    malformed = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    assert _response_status(await _post(client, b"\x00garbage garbage")) == malformed
    assert _response_status(await _post(client, good[:-7])) == malformed
    assert _response_status(await _post(client, b"")) == malformed
    sha224 = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA224()).build()
    assert _response_status(await _post(client, sha224.public_bytes(Encoding.DER))) == malformed
    thousand = multi_request_der([CertId("sha1", name_hash, key_hash, n) for n in range(1, 1001)])
    assert _response_status(await _post(client, thousand)) == malformed
    capped = multi_request_der([CertId("sha1", name_hash, key_hash, n) for n in (cert.serial_number, 7, 8, 9)])
    response = check_ocsp(await _post(client, capped), issuer)
    assert next(r.certificate_status for r in response.responses) == ocsp.OCSPCertStatus.GOOD
    for path in ("/ocsp/%%%not-base64%%%", "/ocsp/abcde", "/ocsp/", "/ocsp"):
        resp = await client.get(path)
        assert resp.status == 200 and _response_status(await resp.read()) == malformed, path
    huge = await client.post("/ocsp", data=b"\x30" * (300 * 1024), headers=OCSP_TYPE)
    assert huge.status == 413
    foreign = multi_request_der([CertId("sha1", b"\x01" * 20, key_hash, 5)])
    assert _response_status(await _post(client, foreign)) == ocsp.OCSPResponseStatus.UNAUTHORIZED
    ca = client.app[CA]
    assert ca.issuers["issuing-ca"].signing_attempts >= 1  # the server still works afterwards
    assert check_ocsp(await _post(client, good), issuer).certificate_status == ocsp.OCSPCertStatus.GOOD


def test_cli_ocsp_refresh_and_crl_generate(
    ca_dir: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`tetra ocsp refresh` signs what no server pre-signed (here a certificate issued by the
    CLI); a second run has nothing left to do. `tetra crl generate --ca` publishes a CRL."""
    from server.cli import main

    monkeypatch.setenv("TETRA_DATABASE__URL", db_url)
    config = str(ca_dir / "tetra.toml")
    csr, _ = make_csr(["cli.example.com"])
    (tmp_path / "cli.csr").write_bytes(csr.public_bytes(Encoding.PEM))
    issue = ["issue", "--csr", str(tmp_path / "cli.csr"), "--profile", "tls-server", "--out", str(tmp_path / "c.pem")]
    assert main([*issue, "--config", config]) == 0
    assert main(["ocsp", "refresh", "--config", config]) == 0
    first = capsys.readouterr().out
    signed = int(first.split("OCSP: signed ")[1].split()[0])
    assert signed >= 2  # the new certificate's SHA-1 and SHA-256 responses (and older ones)
    assert main(["ocsp", "refresh", "--config", config]) == 0
    assert capsys.readouterr().out.startswith("OCSP: signed 0 missing")
    assert main(["crl", "generate", "--ca", "issuing-ca", "--config", config]) == 0
    assert "issuing-ca: complete CRL full number" in capsys.readouterr().out
    assert main(["crl", "generate", "--ca", "nope", "--config", config]) == 2
