"""OpenSSL's own CMP mock server (`openssl cmp -port N`), the reference the CMP client's tests and
the CMP benchmark talk to, and a keep-alive HTTP exchange for CMP messages.

The mock (OpenSSL 3.0, apps/cmp.c) is one process answering one connection at a time: a client
that keeps its connection open holds it. A transaction's later messages (certConf) must come on
the same connection as its ir, because the mock cancels an open transaction when a keep-alive
connection ends without another request; and it closes the connection when a transaction ends
(ip with implicitConfirm, pkiconf, rp, genp, error) although its reply says keep-alive, so a new
transaction needs a new connection. It answers every enrolment with the one
certificate ``-rsp_cert``, MAC-protected with ``-srv_secret`` when the request is, else signed
with ``-srv_cert``/``-srv_key``. It knows PasswordBasedMac, not PBMAC1 (3.0 predates it).
"""

from __future__ import annotations

import http.client
import subprocess
import time
from pathlib import Path
from types import TracebackType

from tests.tetra_process import free_port

VECTORS = Path(__file__).resolve().parent / "vectors" / "cmp"
CONTENT_TYPE = "application/pkixcmp"


class MockServer:
    """`openssl cmp -port` with the vectors' credentials: MAC reference ``reference`` and
    ``secret``, signing identity server.pem, trusting root.pem for signed requests, answering
    with ``rsp_cert`` (issued.pem) and root.pem in caPubs; implicitConfirm granted when asked."""

    def __init__(
        self,
        reference: str = "vector",
        secret: str = "vector-secret",
        *,
        rsp_cert: Path = VECTORS / "issued.pem",
        folder: Path = VECTORS,
        log: Path | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.command = ["openssl", "cmp", "-port", str(self.port), "-srv_ref", reference]
        self.command += ["-srv_secret", f"pass:{secret}", "-rsp_cert", str(rsp_cert)]
        self.command += ["-srv_cert", str(folder / "server.pem"), "-srv_key", str(folder / "server.key")]
        self.command += ["-srv_trusted", str(folder / "root.pem"), "-rsp_capubs", str(folder / "root.pem")]
        self.command += ["-grant_implicitconf", *extra]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MockServer:
        output = self.log.open("ab") if self.log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.command, stdout=output, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"openssl cmp -port exited with {self.proc.returncode}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.connect()
                conn.close()  # the mock logs a failed read and goes on accepting
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"openssl cmp -port {self.port} did not listen within 10 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> MockServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class Exchange:
    """One keep-alive HTTP connection for a CMP transaction: POST each message, read each reply."""

    def __init__(self, port: int, path: str = "/", host: str = "127.0.0.1", timeout: float = 30) -> None:
        self.path = path
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)

    def post(self, der: bytes) -> tuple[int, str, bytes]:
        """(HTTP status, Content-Type, body)."""
        self.conn.request("POST", self.path, body=der, headers={"Content-Type": CONTENT_TYPE})
        reply = self.conn.getresponse()
        return reply.status, reply.getheader("Content-Type") or "", reply.read()

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
