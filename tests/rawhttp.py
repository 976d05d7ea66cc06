"""HTTP/1.1 by hand over asyncio streams, for tests whose clients must misbehave: trickle a head a
byte at a time, stop half-way through a body, hold connections open, send bytes no client
library would, connect from another loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from dataclasses import dataclass


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


def request(
    method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None, close: bool = False
) -> bytes:
    """One request's bytes; Content-Length is added for a body unless `headers` frame it."""
    fields = {"Host": "localhost", **(headers or {})}
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in fields):
        fields["Content-Length"] = str(len(body))
    if close:
        fields["Connection"] = "close"
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return head.encode("latin-1") + body


class Connection:
    """One client connection: raw writes, parsed replies, and how it ended."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.opened = time.monotonic()

    @classmethod
    async def open(
        cls, port: int, *, tls: ssl.SSLContext | None = None, source: str = "127.0.0.1", timeout: float = 10
    ) -> Connection:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1",
                port,
                ssl=tls,
                server_hostname="localhost" if tls else None,
                local_addr=(source, 0),
            ),
            timeout,
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def trickle(self, data: bytes, every: float) -> None:
        """`data` one byte every `every` seconds, until it is all sent or the server hangs up."""
        for i in range(len(data)):
            if self.writer.is_closing():
                return
            try:
                await self.send(data[i : i + 1])
            except (ConnectionError, OSError):
                return
            await asyncio.sleep(every)

    async def reply(self, timeout: float = 10) -> Reply:
        """The next response (framed by Content-Length; no body for 1xx/204/304)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        first, *lines = head[:-4].decode("latin-1").split("\r\n")
        status = int(first.split(" ")[1])
        headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in lines)}
        length = int(headers.get("content-length", "0"))
        body = b"" if status in (204, 304) or status < 200 else await self.reader.readexactly(length)
        return Reply(status, headers, body)

    async def ask(self, data: bytes, timeout: float = 10) -> Reply:
        await self.send(data)
        return await self.reply(timeout)

    async def closed(self, timeout: float) -> bytes:
        """Wait for the server to close (EOF or reset); whatever it sent before. Fails if the
        connection is still open after `timeout` seconds."""
        received = b""
        deadline = time.monotonic() + timeout
        try:
            while chunk := await asyncio.wait_for(self.reader.read(65536), max(deadline - time.monotonic(), 0.01)):
                received += chunk
        except (ConnectionError, ssl.SSLError):
            pass
        except TimeoutError:
            raise AssertionError(f"still open after {timeout} s; received {received[:200]!r}") from None
        return received

    async def still_open(self, seconds: float) -> bool:
        """True if the server neither sends nor closes for `seconds`."""
        try:
            await asyncio.wait_for(self.reader.read(1), seconds)
        except TimeoutError:
            return True
        except (ConnectionError, ssl.SSLError):
            return False
        return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
