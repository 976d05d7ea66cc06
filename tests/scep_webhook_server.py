"""A loopback SCEP validation webhook for tests (SCEP-16): a real aiohttp server over TLS.

It runs in its own thread and event loop, so the same server answers a unit test's client in the
test's loop and a `tetra serve` subprocess alike. Each request takes the next scripted `Answer`
(the last one repeats); every JSON body received is kept in ``queries`` in arrival order.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import self_signed
from tests.tetra_process import free_port


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b'{"allow": true}'
    delay: float = 0.0  # seconds before answering (a timeout test)

    @classmethod
    def verdict(cls, **fields: Any) -> Answer:
        return cls(200, json.dumps(fields).encode())


YES = Answer()


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # PEM anchor that verifies the server certificate
    cert: Path
    key: Path


def make_tls(directory: Path, name: str = "webhook") -> TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, as PEM files."""
    ca_key, ca = self_signed(f"{name} test CA", key_spec="ec-p256", ca=True)
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / f"{name}-ca.pem", directory / f"{name}.pem", directory / f"{name}.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


class WebhookServer:
    """The scripted webhook; ``url`` is https:// when started with TLS files, else http://."""

    def __init__(self, answers: list[Answer], tls: TlsFiles | None) -> None:
        self.answers = list(answers) or [YES]
        self.queries: list[dict[str, Any]] = []
        self.port = free_port()
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}/validate"
        self._tls = tls
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._serve(),), daemon=True)

    def script(self, *answers: Answer) -> None:
        """Answer the next requests with these (the last repeats); forget earlier queries."""
        self.answers = list(answers)
        self.queries.clear()

    async def _handle(self, request: web.Request) -> web.Response:
        self.queries.append(await request.json())
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if answer.delay:
            await asyncio.sleep(answer.delay)
        return web.Response(status=answer.status, body=answer.body, content_type="application/json")

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_post("/validate", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        context = None
        if self._tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self._tls.cert, self._tls.key)
        await web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=context).start()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10), "webhook server did not start"

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


@contextmanager
def webhook_server(*answers: Answer, tls: TlsFiles | None = None) -> Iterator[WebhookServer]:
    server = WebhookServer(list(answers), tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()
