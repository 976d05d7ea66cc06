"""The plain-HTTP listener's OCSP fast path (server/plain_http.py), through a real `run_server`
on loopback ports: the same answers as the aiohttp route on the HTTPS listener, bad input,
HTTP/1.0, keep-alive and pipelining, hand-off of every other request to aiohttp, limits,
and slow clients."""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import sqlalchemy
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from ca.revocation.model import CertId
from server import plain_http
from server.app import run_server
from server.wiring import read_config
from tests.helpers import make_csr
from tests.integration.serverproc import ServerProcess, free_port
from tests.operator_tokens import bearer, issue_token
from tests.revocation_support import check_ocsp, multi_request_der, request_der

MALFORMED = ocsp.OCSPResponseStatus.MALFORMED_REQUEST
# A request id differs between any two answers (and the fast path sends none with the access log off).
IGNORED_HEADERS = {"date", "server", "connection", "keep-alive", "x-request-id"}


@dataclass
class Reply:
    version: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def comparable(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body without what differs by listener or by second."""
        headers = {k.lower(): v for k, v in self.headers if k.lower() not in IGNORED_HEADERS}
        if "cache-control" in headers:  # max-age counts down by the second
            headers["cache-control"] = "".join(c for c in headers["cache-control"] if not c.isdigit())
        return self.status, headers, self.body


async def read_reply(reader: asyncio.StreamReader, *, head_only: bool = False) -> Reply:
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode("latin-1")
    first, *lines = head[:-4].split("\r\n")
    version, status = first.split(" ")[0], int(first.split(" ")[1])
    headers = [(k, v) for k, _, v in (line.partition(": ") for line in lines)]
    length = next((int(v) for k, v in headers if k.lower() == "content-length"), 0)
    body = b"" if status == 304 or head_only else await asyncio.wait_for(reader.readexactly(length), 10)
    return Reply(version, status, headers, body)


async def exchange(port: int, data: bytes, replies: int = 1) -> list[Reply]:
    """Send raw bytes on one connection, read `replies` answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return [await read_reply(reader) for _ in range(replies)]
    finally:
        writer.close()


def post(der: bytes, version: str = "1.1", extra: str = "") -> bytes:
    head = f"POST /ocsp HTTP/{version}\r\nHost: pki.example.com\r\nContent-Type: application/ocsp-request\r\n"
    return f"{head}{extra}Content-Length: {len(der)}\r\n\r\n".encode() + der


def get(path: str, version: str = "1.1", extra: str = "") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: pki.example.com\r\n{extra}\r\n".encode()


def get_path(der: bytes) -> str:
    return "/ocsp/" + quote(base64.b64encode(der).decode(), safe="")


@dataclass
class Served:
    http_port: int
    https_url: str
    tls: ssl.SSLContext
    cert: x509.Certificate
    issuer: x509.Certificate

    async def via_aiohttp(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Reply:
        """The same request through the aiohttp route (HTTPS listener)."""
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.https_url + path, data=body, headers=headers, ssl=self.tls) as resp,
        ):
            return Reply("1.1", resp.status, list(resp.headers.items()), await resp.read())


async def _issue(http_port: int, auth: dict[str, str], name: str) -> tuple[x509.Certificate, x509.Certificate]:
    csr, _ = make_csr([name])
    payload = {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://127.0.0.1:{http_port}/api/v1/enroll",
            json=payload,
            headers=auth,
        ) as resp,
    ):
        assert resp.status == 201, await resp.text()
        body = await resp.json()
    chain = x509.load_pem_x509_certificates(body["chain"].encode())
    return x509.load_pem_x509_certificate(body["certificate"].encode()), chain[0]


async def _serve(ca_dir: Path, db_url: str | None, extra: dict[str, str] | None = None) -> AsyncIterator[Served]:
    http_port, https_port = free_port(), free_port()
    environ = {
        "TETRA_SERVER__HTTP": f"127.0.0.1:{http_port}",
        "TETRA_SERVER__HTTPS": f"127.0.0.1:{https_port}",
        "TETRA_SERVER__PROTOCOLS": '["ocsp","crl"]',
        "TETRA_MANAGE__LISTEN": "",  # the management API on the HTTP listener only
        "TETRA_MANAGE__ALSO_ON": '["http"]',
        "TETRA_OCSP__RESPONDER_COUNTRY": "US",
        "TETRA_OCSP__MAX_CERTS": "4",
        **(extra or {}),
    }
    if db_url is not None:
        environ["TETRA_DATABASE__URL"] = db_url
    config = read_config(ca_dir / "tetra.toml", environ=environ)
    store = db_url or f"sqlite:///{ca_dir / 'tetra.db'}"
    stop = asyncio.Event()
    task = asyncio.create_task(run_server(config, stop))
    try:
        deadline = time.monotonic() + 60
        while True:
            assert not task.done(), task.exception()
            try:
                if (await exchange(http_port, get("/healthz")))[0].status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server not up"
            await asyncio.sleep(0.1)
        auth = bearer(await asyncio.to_thread(issue_token, store))  # an administrator's
        cert, issuer = await _issue(http_port, auth, "fast.example.com")
        await _until_presigned(store, cert)
        tls = ssl.create_default_context(cafile=str(ca_dir / "ca" / "root.pem"))
        yield Served(http_port, f"https://127.0.0.1:{https_port}", tls, cert, issuer)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _until_presigned(url: str, cert: x509.Certificate) -> None:
    """Wait until the leader has pre-signed the new certificate's answers (one per presign hash).

    Until then the first request is answered fresh and cached, and the pre-signing that follows
    the issuance feed replaces that answer with one of another producedAt (so another ETag): a
    comparison spanning that moment would compare two honest answers of different ages."""
    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    query = sqlalchemy.text("SELECT count(*) FROM ocsp_responses WHERE serial = :serial")
    serial = format(cert.serial_number, "x")
    try:
        deadline = time.monotonic() + 30
        while True:
            with engine.connect() as conn:
                rows = conn.execute(query, {"serial": serial}).scalar_one()
            if rows >= 2:
                return
            assert time.monotonic() < deadline, "the new certificate was never pre-signed"
            await asyncio.sleep(0.05)
    finally:
        engine.dispose()


@pytest.fixture
async def served(ca_dir: Path) -> AsyncIterator[Served]:
    """The demo CA on its SQLite store (the fast path does not touch the database itself)."""
    async for value in _serve(ca_dir, None):
        yield value


@pytest.fixture
async def served_impatiently(ca_dir: Path) -> AsyncIterator[Served]:
    """As `served`, with half-second head and body timeouts ([server] header_timeout_seconds...)."""
    limits = {"TETRA_SERVER__HEADER_TIMEOUT_SECONDS": "0.5", "TETRA_SERVER__BODY_TIMEOUT_SECONDS": "0.5"}
    async for value in _serve(ca_dir, None, limits):
        yield value


@pytest.fixture
async def served_any_db(ca_dir: Path, db_url: str) -> AsyncIterator[Served]:
    async for value in _serve(ca_dir, db_url):
        yield value


async def test_fast_path_answers_like_the_aiohttp_route(served_any_db: Served) -> None:
    """OCSP-01, OCSP-04, OCSP-07, OCSP-12, OCSP-14: good (SHA-1 and SHA-256, POST and GET),
    unknown, unauthorized and conditional GET: byte for byte what the aiohttp route answers,
    caching headers included."""
    s = served_any_db
    name_hash, key_hash = _issuer_hashes(s.cert, s.issuer)
    never = multi_request_der([CertId("sha1", name_hash, key_hash, 0x1234567890ABCDEF)])
    foreign = multi_request_der([CertId("sha1", b"\x01" * 20, key_hash, 5)])
    requests = [request_der(s.cert, s.issuer, "sha1"), request_der(s.cert, s.issuer, "sha256"), never, foreign]
    for der in requests:
        await exchange(s.http_port, post(der))  # settle: the cache holds the pre-signed answer now
        [fast_post] = await exchange(s.http_port, post(der))
        slow_post = await s.via_aiohttp("POST", "/ocsp", der, {"Content-Type": "application/ocsp-request"})
        assert fast_post.comparable() == slow_post.comparable()
        [fast_get] = await exchange(s.http_port, get(get_path(der)))
        slow_get = await s.via_aiohttp("GET", get_path(der))
        assert fast_get.comparable() == slow_get.comparable()
        assert fast_post.header("Content-Type") == "application/ocsp-response"
        assert fast_post.header("Server") is fast_get.header("Server") is None  # not aiohttp's answer
        assert slow_get.header("Server") is not None
    good = ocsp.load_der_ocsp_response(fast_get.body)
    assert good.response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED
    [good_get] = await exchange(s.http_port, get(get_path(requests[0])))
    assert check_ocsp(good_get.body, s.issuer).certificate_status == ocsp.OCSPCertStatus.GOOD
    etag = good_get.header("ETag")
    assert etag and "max-age=" in (good_get.header("Cache-Control") or "")
    [not_modified] = await exchange(s.http_port, get(get_path(requests[0]), extra=f"If-None-Match: {etag}\r\n"))
    slow_not_modified = await s.via_aiohttp("GET", get_path(requests[0]), headers={"If-None-Match": etag})
    assert not_modified.status == 304 and not_modified.comparable() == slow_not_modified.comparable()
    [unknown] = await exchange(s.http_port, post(never))
    assert check_ocsp(unknown.body, s.issuer).certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def _issuer_hashes(cert: x509.Certificate, issuer: x509.Certificate) -> tuple[bytes, bytes]:
    req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    return req.issuer_name_hash, req.issuer_key_hash


async def test_bad_input_gets_the_same_ocsp_errors(served: Served) -> None:
    """OCSP-05, OCSP-06, OCSP-08: garbage, truncated, empty, trailing garbage, too many CertIDs,
    bad base64 and escapes, nonces of 0 and 33 octets: malformedRequest, exactly as the aiohttp
    route says it; nonces of 1 and 32 octets are signed fresh and echoed."""
    s = served
    good = request_der(s.cert, s.issuer)
    name_hash, key_hash = _issuer_hashes(s.cert, s.issuer)
    five = multi_request_der([CertId("sha1", name_hash, key_hash, n) for n in range(1, 6)])
    bodies = [b"\x00garbage garbage", good[:-7], b"", good + b"\x00\x00", five]
    bodies += [request_der(s.cert, s.issuer, nonce=b""), request_der(s.cert, s.issuer, nonce=b"n" * 33)]
    for body in bodies:
        [fast] = await exchange(s.http_port, post(body))
        slow = await s.via_aiohttp("POST", "/ocsp", body, {"Content-Type": "application/ocsp-request"})
        assert fast.status == 200 and ocsp.load_der_ocsp_response(fast.body).response_status == MALFORMED, body
        assert fast.comparable() == slow.comparable()
    for path in ("/ocsp/%%%not-base64%%%", "/ocsp/abcde", "/ocsp/", "/ocsp", "/ocsp//", "/ocsp/%2", "/ocsp?x=1"):
        [fast] = await exchange(s.http_port, get(path))
        slow = await s.via_aiohttp("GET", path)
        assert ocsp.load_der_ocsp_response(fast.body).response_status == MALFORMED, path
        assert fast.comparable() == slow.comparable(), path
    for nonce in (b"1", b"n" * 32):
        [fast] = await exchange(s.http_port, post(request_der(s.cert, s.issuer, nonce=nonce)))
        echoed = check_ocsp(fast.body, s.issuer).extensions.get_extension_for_class(x509.OCSPNonce).value.nonce
        assert echoed == nonce


async def test_http10_stapling_request(served: Served) -> None:
    """OCSP-12: nginx's stapling request, HTTP/1.0 GET with percent-escaped standard base64:
    an HTTP/1.0 200 with exactly Content-Type: application/ocsp-response, then the server
    closes; with Connection: keep-alive the connection stays open for the next request."""
    s = served
    der = request_der(s.cert, s.issuer)
    path = get_path(der)
    assert "%2B" in path or "%2F" in path or "%3D" in path  # escaped, as nginx sends it
    reader, writer = await asyncio.open_connection("127.0.0.1", s.http_port)
    writer.write(get(path, "1.0"))
    reply = await read_reply(reader)
    assert reply.version == "HTTP/1.0" and reply.status == 200
    assert [v for k, v in reply.headers if k.lower() == "content-type"] == ["application/ocsp-response"]
    assert check_ocsp(reply.body, s.issuer).certificate_status == ocsp.OCSPCertStatus.GOOD
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the answer
    writer.close()
    replies = await exchange(s.http_port, get(path, "1.0", "Connection: keep-alive\r\n") * 2, replies=2)
    assert [r.body for r in replies] == [reply.body, reply.body]
    assert replies[0].header("Connection") == "keep-alive"


async def test_pipelined_requests_are_answered_in_order_and_handed_off(served: Served) -> None:
    """Keep-alive and pipelining: cached answers, a nonce (signed in a task) and a GET are answered
    in order; a request for another route, sent behind them, goes to aiohttp from its first byte,
    and later OCSP requests on that connection are still answered. A request sent a byte at a
    time is answered too."""
    s = served
    der = request_der(s.cert, s.issuer)
    nonce = request_der(s.cert, s.issuer, nonce=b"pipelined-nonce")
    data = post(der) + post(nonce) + get(get_path(der)) + get("/healthz") + post(der) + get("/roots.pem")
    replies = await exchange(s.http_port, data, replies=6)
    assert [r.status for r in replies] == [200] * 6
    assert replies[0].body == replies[2].body == replies[4].body
    # The fast path answers without a Server header; after the hand-off, aiohttp answers with one.
    assert [r.header("Server") is None for r in replies] == [True, True, True, False, False, False]
    echoed = check_ocsp(replies[1].body, s.issuer).extensions.get_extension_for_class(x509.OCSPNonce).value
    assert echoed.nonce == b"pipelined-nonce"
    assert b'"status": "ok"' in replies[3].body or b'"status":"ok"' in replies[3].body
    assert replies[5].body.startswith(b"-----BEGIN CERTIFICATE-----")
    reader, writer = await asyncio.open_connection("127.0.0.1", s.http_port)
    for byte in post(der):
        writer.write(bytes((byte,)))
        await writer.drain()
    assert (await read_reply(reader)).body == replies[0].body
    writer.close()


async def test_other_routes_and_methods_go_to_aiohttp(served: Served) -> None:
    """Everything that is not POST/GET /ocsp keeps aiohttp's answers: CRLs, trust bundles,
    metrics (which count the fast path's answers), 404, 405, chunked and Expect bodies."""
    s = served
    der = request_der(s.cert, s.issuer)
    [expected] = await exchange(s.http_port, post(der))
    [metrics] = await exchange(s.http_port, get("/metrics"))
    counted = [line for line in metrics.body.split(b"\n") if line.startswith(b"tetra_http_requests_total{")]
    assert any(b'method="POST"' in line and b'protocol="ocsp"' in line and b'status="200"' in line for line in counted)
    [crl] = await exchange(s.http_port, get("/crl/no-such-crl.crl"))
    assert crl.status == 404 and crl.header("Content-Type") != "application/ocsp-response"
    [missing] = await exchange(s.http_port, get("/ocspx"))
    assert missing.status == 404
    [wrong_method] = await exchange(s.http_port, post(der).replace(b"POST /ocsp ", b"POST /ocsp/abc ", 1))
    assert wrong_method.status == 405
    reader, writer = await asyncio.open_connection("127.0.0.1", s.http_port)
    writer.write(get(get_path(der)).replace(b"GET ", b"HEAD ", 1))
    assert (await read_reply(reader, head_only=True)).status == 405
    writer.close()
    chunked = (
        b"POST /ocsp HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(der):x}\r\n".encode()
        + der
        + b"\r\n0\r\n\r\n"
    )
    [via_chunks] = await exchange(s.http_port, chunked)
    assert via_chunks.body == expected.body
    continued = await exchange(s.http_port, post(der, extra="Expect: 100-continue\r\n"), replies=2)
    assert [r.status for r in continued] == [100, 200] and continued[1].body == expected.body


async def test_oversize_and_bad_http_are_refused(served: Served) -> None:
    """OCSP-05, DOS-02: a body over the protocol's limit is refused with 413 before it is read;
    one under it but over the request cap is malformedRequest; a head llhttp refuses gets
    aiohttp's 400; a huge head is refused; the server keeps answering."""
    s = served
    [huge] = await exchange(s.http_port, post(b"\x30" * (300 * 1024)))
    assert huge.status == 413
    [large] = await exchange(s.http_port, post(b"\x30\x82\xff\xff" + b"\x00" * (100 * 1024)))
    assert large.status == 200 and ocsp.load_der_ocsp_response(large.body).response_status == MALFORMED
    [bad] = await exchange(s.http_port, b"POST /ocsp HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n12")
    assert bad.status == 400
    [long_head] = await exchange(s.http_port, get("/ocsp/" + "A" * (plain_http.MAX_HEAD + 10)))
    assert long_head.status in (400, 414, 431)
    [still] = await exchange(s.http_port, post(request_der(s.cert, s.issuer)))
    assert check_ocsp(still.body, s.issuer).certificate_status == ocsp.OCSPCertStatus.GOOD


async def test_slow_clients_block_nobody_and_time_out(served_impatiently: Served) -> None:
    """DOS-08: a client that sends half a request head holds only its own connection; others
    are answered meanwhile; it is closed once the header timeout passes without the rest."""
    s = served_impatiently
    der = request_der(s.cert, s.issuer)
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", s.http_port)
    slow_writer.write(post(der)[:40])
    started = time.monotonic()
    for _ in range(20):
        [reply] = await exchange(s.http_port, post(der))
        assert reply.status == 200
    assert time.monotonic() - started < 5
    assert await asyncio.wait_for(slow_reader.read(), 5) == b""  # closed by the sweeper
    slow_writer.close()


async def test_tetra_serve_on_uvloop(ca_dir: Path, tmp_path: Path) -> None:
    """`tetra serve` runs the listener on uvloop (whose transports differ from asyncio's): OCSP
    answered on the fast path, the hand-off to aiohttp, HTTP/1.0, in a real server process."""
    protocols = {"TETRA_SERVER__PROTOCOLS": '["ocsp"]'}
    server = ServerProcess(ca_dir / "tetra.toml", f"sqlite:///{ca_dir / 'tetra.db'}", tmp_path / "serve.log", protocols)
    try:
        await asyncio.to_thread(server.wait_ready)
        garbage = post(b"\x00garbage")
        replies = await exchange(server.http_port, garbage + get("/healthz") + garbage, replies=3)
        assert [r.status for r in replies] == [200, 200, 200]
        assert ocsp.load_der_ocsp_response(replies[0].body).response_status == MALFORMED
        assert [r.header("Server") is None for r in replies] == [True, False, False]
        [old] = await exchange(server.http_port, get("/ocsp/%%%", "1.0"))
        assert old.version == "HTTP/1.0" and ocsp.load_der_ocsp_response(old.body).response_status == MALFORMED
    finally:
        server.stop()


async def test_a_bug_is_answered_with_internal_error_on_both_paths(
    served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DOS-15: a handler that fails unexpectedly, before I/O (answer_now) or after (answer_later,
    a nonce to sign), is an OCSP internalError on the fast path and on the aiohttp route alike,
    each logged on one line with one traceback per site; the connection keeps serving."""
    from protocols.ocsp.handlers import OcspHandlers

    def broken_now(*args: object, **kwargs: object) -> object:
        raise RuntimeError("planted before I/O")

    async def broken_later(*args: object, **kwargs: object) -> object:
        raise RuntimeError("planted after I/O")

    s = served
    caplog.set_level(logging.INFO, logger="tetra.http")
    # A serial no cache holds: with a nonce, answered only after a store lookup (answer_later);
    # the demo certificate's statuses are cached, so its nonce request is signed in answer_now.
    name_hash, key_hash = _issuer_hashes(s.cert, s.issuer)
    with_nonce = multi_request_der([CertId("sha1", name_hash, key_hash, 0x5EED)], nonce=b"n" * 16)
    monkeypatch.setattr(OcspHandlers, "answer_later", broken_later)
    replies = await exchange(s.http_port, post(with_nonce) * 2, replies=2)  # pipelined on one connection
    monkeypatch.setattr(OcspHandlers, "answer_now", broken_now)
    replies += await exchange(s.http_port, post(request_der(s.cert, s.issuer)) * 2, replies=2)
    replies.append(await s.via_aiohttp("POST", "/ocsp", with_nonce, {"Content-Type": "application/ocsp-request"}))
    for reply in replies:
        assert reply.status == 200 and reply.header("Content-Type") == "application/ocsp-response"
        assert ocsp.load_der_ocsp_response(reply.body).response_status == ocsp.OCSPResponseStatus.INTERNAL_ERROR
    lines = [r for r in caplog.records if "failed unexpectedly" in r.getMessage()]
    assert len(lines) == 5
    assert sum(1 for r in lines if r.exc_info) == 2  # one per planted site
