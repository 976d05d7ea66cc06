"""The OCSP benchmark's load generator: wrk (C, epoll) driven by a Lua script that cycles
pre-built raw requests, plus a small raw-asyncio client that checks a sample of answers
(and, over TLS with a client certificate, which wrk cannot present, drives the EST benchmark).

One Python process with asyncio streams tops out near 10,000 requests/s on this VM (see
`python bench/loadgen.py --selftest`), below what a pre-signed responder answers, so the
counting is done by wrk; the same command, script and request files drive every server.
wrk keeps connections alive when the server allows it and reconnects when it closes them.

    python bench/loadgen.py --selftest [--seconds 3]   # both clients against a trivial server
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import socket
import ssl as ssl_module
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LUA = Path(__file__).resolve().parent / "wrk_cycle.lua"
Check = Callable[[int, bytes], bool]


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    quantiles: dict[float, float] = field(default_factory=dict)  # quantile -> seconds
    bodies_checked: int = 0
    first_error: str = ""  # the first failure's status and body head (asyncio client only)
    connections_answered: int = 0  # connections with an answer inside the window (asyncio client only)
    exhausted: bool = False  # run_asyncio(once=True) sent every request before the window closed

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        return self.quantiles.get(q, 0.0)


def post_request(path: str, body: bytes, host: str = "localhost") -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/ocsp-request\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def get_request(path: str, host: str = "localhost") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


# -- wrk ---------------------------------------------------------------------------------------
def wrk_threads(concurrency: int) -> int:
    return max(1, min(concurrency, os.cpu_count() or 1))


def write_requests(path: Path, requests: list[bytes]) -> None:
    """The Lua script's input: each request as '<length>\\n<bytes>'."""
    with path.open("wb") as out:
        for raw in requests:
            out.write(b"%d\n" % len(raw))
            out.write(raw)


def _wrk(url: str, requests_file: Path, concurrency: int, seconds: int) -> dict[str, float]:
    threads = wrk_threads(concurrency)
    command = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds}s", "--timeout", "10s"]
    command += ["-s", str(LUA), url, "--", str(requests_file)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise RuntimeError(f"wrk printed no summary (exit {done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")


def run_wrk(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
    between_runs: Callable[[], None] | None = None,
) -> LoadResult:
    """Cycle `requests` from `concurrency` connections: a warm-up run (discarded), then the measured one."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian package wrk; `make debian-packages`)")
    url = f"http://{host}:{port}/"
    with tempfile.TemporaryDirectory(prefix="loadgen-") as tmp:
        requests_file = Path(tmp) / "requests"
        write_requests(requests_file, requests)
        if warmup > 0:
            _wrk(url, requests_file, concurrency, max(1, math.ceil(warmup)))
            if between_runs is not None:
                between_runs()
        summary = _wrk(url, requests_file, concurrency, max(1, math.ceil(seconds)))
    result = LoadResult(
        requests=int(summary["requests"]),
        errors=int(summary["errors"]),
        seconds=summary["duration_us"] / 1e6,
        quantiles={0.5: summary["p50_us"] / 1e6, 0.99: summary["p99_us"] / 1e6},
    )
    return result


# -- raw asyncio client: answers checked, and the comparison in --selftest -------------------------
async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A chunked body (RFC 9112 §7.1), trailers skipped."""
    parts = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
        parts.append(await reader.readexactly(size + 2))
    while await reader.readuntil(b"\r\n") != b"\r\n":
        pass
    return b"".join(part[:-2] for part in parts)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, server keeps the connection). Bodies come with a Content-Length, chunked
    (Go's net/http chunks answers it did not size, such as scepserver's CertRep), or until close."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length, keep, chunked = None, lines[0].startswith("HTTP/1.1"), False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = value.strip().lower() == "chunked"
        elif name == "connection":
            keep = value.strip().lower() == "keep-alive" or (keep and value.strip().lower() != "close")
    if chunked:
        body = await _read_chunked(reader)
    elif length is None:
        body = await reader.read()
        keep = False
    else:
        body = await reader.readexactly(length)
    return status, body, keep


async def check_sample(
    host: str,
    port: int,
    requests: list[bytes],
    check: Check,
    count: int = 50,
    ssl: ssl_module.SSLContext | None = None,
) -> LoadResult:
    """Send `count` requests spread over the list, one connection, and check every answer."""
    result = LoadResult(bodies_checked=0)
    step = max(1, len(requests) // count)
    reader = writer = None
    for index in range(0, len(requests), step)[:count]:
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port, ssl=ssl)
        assert reader is not None
        writer.write(requests[index])
        status, body, keep = await _read_response(reader)
        result.bodies_checked += 1
        if status != 200 or not check(index, body):
            result.errors += 1
            result.first_error = result.first_error or f"HTTP {status}: {body[:300]!r}"
        if not keep:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()
    return result


async def run_asyncio(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 0.5,
    ssl: ssl_module.SSLContext | None = None,
    check: Callable[[bytes], str | None] | None = None,
    once: bool = False,
    timeout: float | None = None,
) -> LoadResult:
    """`concurrency` asyncio connections in this process (over TLS with `ssl`), each sending the
    next request when the previous answer is in; a connection the server closes, or drops, is
    opened again (a TLS handshake then counts in that request's latency). `requests` counts the
    answers that arrive inside the window (also those sent before it opened: with slow answers,
    counting only requests sent inside the window would undercount the rate); `errors` those of
    them with a status other than 200, plus the connections that dropped inside the window (not
    in `requests`); the first is kept in `first_error`.

    For protocols whose failures come back as HTTP 200 (SCEP's CertRep FAILURE), `check` reads each
    200 body and returns why it is wrong, or None. `once` sends each request at most once (SCEP
    messages carry a transactionID a server may remember) and sets `exhausted` when the list ran
    out before the window closed. `timeout` bounds each answer; one that takes longer is an error."""
    result = LoadResult()
    latencies: list[float] = []
    counter = [0]
    measure_from = time.monotonic() + warmup
    stop_at = measure_from + seconds

    def failed(at: float, why: str) -> None:
        if measure_from <= at <= stop_at:
            result.errors += 1
            result.first_error = result.first_error or why

    async def worker() -> None:
        reader = writer = None
        answered = False
        while (begin := time.monotonic()) < stop_at:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port, ssl=ssl)
                assert reader is not None
                if once and counter[0] >= len(requests):
                    result.exhausted = True
                    break
                counter[0] += 1
                writer.write(requests[(counter[0] - (1 if once else 0)) % len(requests)])
                status, body, keep = await asyncio.wait_for(_read_response(reader), timeout)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                failed(time.monotonic(), f"{type(exc).__name__}: {exc}"[:300])
                if writer is not None:
                    writer.close()
                writer = None
                continue
            end = time.monotonic()
            if measure_from <= end <= stop_at:
                result.requests += 1
                latencies.append(end - begin)
                result.connections_answered += not answered
                answered = True
                if status != 200:
                    failed(end, f"HTTP {status}: {body[:300]!r}")
                elif check is not None and (why := check(body)) is not None:
                    failed(end, why)
            if not keep:
                writer.close()
                writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = seconds
    latencies.sort()
    if latencies:
        result.quantiles = {q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] for q in (0.5, 0.99)}
    return result


# -- --selftest: what the generators reach against a server that does nothing -------------------
TRIVIAL_SERVER = r"""
import asyncio, sys, httptools, uvloop
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\nContent-Length: 5\r\n\r\nhello"
class Trivial(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.parser = transport, httptools.HttpRequestParser(self)
    def data_received(self, data):
        self.parser.feed_data(data)
    def on_message_complete(self):
        self.transport.write(ANSWER)
async def main():
    server = await asyncio.get_running_loop().create_server(Trivial, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
uvloop.run(main())
"""


def selftest(seconds: float) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = subprocess.Popen([sys.executable, "-c", TRIVIAL_SERVER, str(port)], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
        requests = [post_request("/ocsp", os.urandom(100)) for _ in range(100)]
        lines = [
            "Load generators against a trivial server (one uvloop + httptools process answering a fixed "
            "5-byte body; POST of 100-byte bodies, keep-alive):",
            "",
            "| generator | concurrency | requests/s | p50 / p99 ms |",
            "|---|---:|---:|---:|",
        ]
        for concurrency in (1, 8, 64):
            for name in ("wrk", "asyncio"):
                if name == "wrk":
                    result = run_wrk("127.0.0.1", port, requests, concurrency=concurrency, seconds=seconds)
                else:
                    result = asyncio.run(
                        run_asyncio("127.0.0.1", port, requests, concurrency=concurrency, seconds=seconds)
                    )
                lines.append(
                    f"| {name} | {concurrency} | {result.rps:,.0f} | "
                    f"{result.percentile(0.5) * 1e3:.2f} / {result.percentile(0.99) * 1e3:.2f} |"
                )
        return "\n".join(lines)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--selftest", action="store_true", help="measure both generators against a trivial server")
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    if not args.selftest:
        parser.error("nothing to do: pass --selftest")
    print(selftest(args.seconds))


def write_record(args: argparse.Namespace, md: str, rows: list[Any], load_average: object) -> None:
    """Print a benchmark's markdown and write it to --output, with the JSON record beside it:
    the arguments, the load average at the start, and every row (its dataclass fields, rate and
    per_cpu)."""
    print()
    print(md)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(md)
    record: dict[str, Any] = {"arguments": {k: str(v) for k, v in vars(args).items()}, "load_average": load_average}
    record["rows"] = [asdict(r) | {"rate": r.rate, "per_cpu": r.per_cpu} for r in rows]
    args.output.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"written to {args.output} and {args.output.with_suffix('.json').name}")
