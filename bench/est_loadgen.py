"""The EST benchmark's load generator, run as its own process by bench_est.py: pre-built
simpleenroll requests sent over HTTPS with keep-alive (loadgen.run_asyncio on uvloop), with a
TLS client certificate or with the HTTP Basic header the requests carry.

    python bench/est_loadgen.py JOB.json     # prints one JSON object: the result

JOB names the server (host, port, trust anchor, PID), the raw requests file (loadgen's
'<length>\\n<bytes>' format), the client certificate and key if any, concurrency, warm-up and
measured seconds. Before the run a sample of answers is checked: each must be a base64
certs-only PKCS#7 whose certificate carries the CSR's public key. The server's CPU time
(utime + stime of it and its children, /proc/PID/stat) is read when the measured window
opens and when it closes, in this process, so the window and the CPU reading coincide.

wrk would be lighter, but it cannot present a client certificate.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
import time
from dataclasses import asdict
from pathlib import Path

import uvloop
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_acme import cpu_seconds
from loadgen import LoadResult, check_sample, run_asyncio


def read_requests(path: Path) -> list[bytes]:
    """The inverse of loadgen.write_requests."""
    data, out, at = path.read_bytes(), [], 0
    while at < len(data):
        newline = data.index(b"\n", at)
        length = int(data[at:newline])
        out.append(data[newline + 1 : newline + 1 + length])
        at = newline + 1 + length
    return out


def client_context(job: dict[str, str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=job["cafile"])
    context.check_hostname = False  # the servers' certificates name localhost; we connect to 127.0.0.1
    if job.get("cert"):
        context.load_cert_chain(job["cert"], job["key"])
    return context


def issued_for_request(request: bytes, body: bytes) -> bool:
    """Whether `body` is a base64 certs-only PKCS#7 whose first certificate has the CSR's key."""
    csr = x509.load_der_x509_csr(base64.b64decode(request.partition(b"\r\n\r\n")[2]))
    certs = pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))
    return bool(certs) and certs[0].public_key() == csr.public_key()


async def run(job: dict[str, object]) -> dict[str, object]:
    requests = read_requests(Path(str(job["requests"])))
    context = client_context({k: str(v) for k, v in job.items()})
    host, port, pid = str(job["host"]), int(str(job["port"])), int(str(job["pid"]))
    warmup, seconds = float(str(job["warmup"])), float(str(job["seconds"]))
    sample = await check_sample(
        host, port, requests, lambda i, body: issued_for_request(requests[i], body), count=20, ssl=context
    )
    cpu: list[float] = []

    async def read_cpu(at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        cpu.append(cpu_seconds(pid))

    opened = time.monotonic() + warmup
    readers = [asyncio.create_task(read_cpu(opened)), asyncio.create_task(read_cpu(opened + seconds))]
    result: LoadResult = await run_asyncio(
        host, port, requests, concurrency=int(str(job["concurrency"])), seconds=seconds, warmup=warmup, ssl=context
    )
    await asyncio.gather(*readers)
    out: dict[str, object] = asdict(result)
    out["cpu_seconds"] = cpu[1] - cpu[0]
    out["sample_checked"] = sample.bodies_checked
    out["sample_errors"] = sample.errors
    out["sample_first_error"] = sample.first_error
    return out


if __name__ == "__main__":
    job = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(uvloop.run(run(job))), flush=True)
