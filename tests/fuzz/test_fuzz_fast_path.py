"""DOS-06: the plain-HTTP OCSP front end parses HTTP itself (server/plain_http.py), so it is
fuzzed on raw bytes: request lines with any path, damaged OCSP bodies under any Content-Length
and Transfer-Encoding, and unframed junk. Every exchange ends in an HTTP answer (an OCSP response,
or a 4xx for broken HTTP) or a closed connection, never a 5xx, a hang or an ERROR line; the
listener keeps serving afterwards."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography.x509 import ocsp
from hypothesis import example, given
from hypothesis import strategies as st

from server.app import run_server
from server.wiring import read_config
from tests.fuzz.harness import STATS, LogWatch, fuzz_settings, mutated
from tests.integration.serverproc import free_port
from tests.integration.test_ocsp_fast_path import Reply, _issue, exchange, get_path, read_reply
from tests.operator_tokens import bearer, issue_token
from tests.revocation_support import request_der

CLOSED = Reply("", 0, [], b"")  # the server closed the connection without an answer


@contextmanager
def serving(ca_dir: Path) -> Iterator[tuple[asyncio.AbstractEventLoop, int, bytes, LogWatch]]:
    port = free_port()
    environ = {
        "TETRA_SERVER__HTTP": f"127.0.0.1:{port}",
        "TETRA_SERVER__HTTPS": f"127.0.0.1:{free_port()}",
        "TETRA_SERVER__PROTOCOLS": '["ocsp","crl"]',
        "TETRA_MANAGE__LISTEN": "",  # the management API (to issue the certificate) on the HTTP listener only
        "TETRA_MANAGE__ALSO_ON": '["http"]',
    }
    config = read_config(ca_dir / "tetra.toml", environ=environ)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    task = loop.create_task(run_server(config, stop))
    watch = LogWatch()
    try:
        deadline = time.monotonic() + 60
        while True:
            assert not task.done(), task.exception()
            try:
                if (
                    loop.run_until_complete(exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))[0].status
                    == 200
                ):
                    break
            except OSError:
                loop.run_until_complete(asyncio.sleep(0.1))
            assert time.monotonic() < deadline, "server not up"
        auth = bearer(issue_token(f"sqlite:///{ca_dir / 'tetra.db'}"))  # an administrator's
        cert, issuer = loop.run_until_complete(_issue(port, auth, "fast-fuzz.example.com"))
        logging.getLogger().addHandler(watch)
        yield loop, port, request_der(cert, issuer), watch
    finally:
        logging.getLogger().removeHandler(watch)
        stop.set()
        loop.run_until_complete(asyncio.wait_for(task, 30))
        loop.close()


async def send(port: int, data: bytes) -> Reply:
    """Write the bytes, half-close (so a request cut short is seen as cut, not as slow), and read
    the first answer; CLOSED if the server closed without one."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        writer.write_eof()
        return await read_reply(reader)
    except (asyncio.IncompleteReadError, ConnectionError):
        return CLOSED
    finally:
        writer.close()


def framed(valid: bytes) -> st.SearchStrategy[bytes]:
    """Well-framed requests around damaged content, and damaged framing around valid content."""
    body = mutated(valid) | st.just(valid) | st.binary(max_size=200)
    post = st.tuples(body, st.sampled_from(["", "Transfer-Encoding: chunked\r\n", "Content-Length: -1\r\n"])).map(
        lambda t: (
            (
                f"POST /ocsp HTTP/1.1\r\nHost: pki\r\nContent-Type: application/ocsp-request\r\n{t[1]}"
                f"Content-Length: {len(t[0])}\r\n\r\n"
            ).encode()
            + t[0]
        )
    )
    get_line = st.one_of(
        mutated(valid).map(get_path),
        st.text(st.characters(codec="latin-1", exclude_characters="\r\n "), max_size=120).map(lambda s: "/ocsp/" + s),
    ).map(lambda path: f"GET {path} HTTP/1.1\r\nHost: pki\r\n\r\n".encode("latin-1"))
    junk = mutated(f"GET {get_path(valid)} HTTP/1.1\r\nHost: pki\r\n\r\n".encode())
    return post | get_line | junk


def test_fast_path_raw_requests(ca_dir: Path) -> None:
    """DOS-06, OCSP-05: raw requests to the plain-HTTP OCSP listener."""
    started, runs = time.monotonic(), [0]
    with serving(ca_dir) as (loop, port, valid, watch):

        @fuzz_settings(2)
        @given(framed(valid))
        @example(f"GET /ocsp/{'A' * 9000} HTTP/1.1\r\nHost: pki\r\n\r\n".encode())
        def check(data: bytes) -> None:
            runs[0] += 1
            logged = len(watch.bad)
            reply = loop.run_until_complete(asyncio.wait_for(send(port, data), 15))
            assert reply.status < 500, (reply.status, reply.body[:200])
            if reply.status == 200:
                ocsp.load_der_ocsp_response(reply.body)
            assert not watch.bad[logged:], watch.bad[logged : logged + 3]

        check()
        good = loop.run_until_complete(send(port, f"GET {get_path(valid)} HTTP/1.1\r\nHost: pki\r\n\r\n".encode()))
        assert good.status == 200
        status = ocsp.load_der_ocsp_response(good.body).certificate_status
        assert status == ocsp.OCSPCertStatus.GOOD  # still serving, and still right
    count, seconds = STATS.setdefault("ocsp fast path raw", [0, 0.0])
    STATS["ocsp fast path raw"] = [count + runs[0], seconds + time.monotonic() - started]
