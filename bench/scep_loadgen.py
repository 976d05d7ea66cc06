"""The SCEP benchmark's load generator, run as its own process by bench_scep.py: pre-built
PKCSReq messages POSTed over plain HTTP with keep-alive (loadgen.run_asyncio on uvloop), each
message sent once (a server may remember a transactionID), every CertRep's pkiStatus read.

    python bench/scep_loadgen.py JOB.json     # prints one JSON object: the result

JOB names the server (host, port, PID), the raw requests file (loadgen's '<length>\\n<bytes>'
format), concurrency, warm-up, measured and timeout seconds. The server's CPU time (utime +
stime of it and its children, /proc/PID/stat) is read when the measured window opens and
when it closes, in this process, so the window and the CPU reading coincide.

A CertRep answers HTTP 200 whether it says SUCCESS, FAILURE or PENDING, so every answer's
pkiStatus is read: a byte search for the signed attribute (RFC 8894 §3.2.1.3) rather than a
CMS parse, so that checking costs the generator microseconds, not the server's share of the
two cores. bench_scep.py parses a sample of replies in full before each row.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import uvloop
from asn1crypto import core

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_acme import cpu_seconds
from est_loadgen import read_requests
from loadgen import LoadResult, run_asyncio

from ca.cms.scep import OID_FAIL_INFO, OID_PKI_STATUS, FailInfo, PkiStatus

STATUS_NAMES = {s.value: s.name for s in PkiStatus}
FAIL_NAMES = {f.value: f.name for f in FailInfo}


def _attribute_value(body: bytes, oid: str) -> str | None:
    """The one-character PrintableString value of a signed attribute (`SET { PrintableString }`
    after its OID), found by bytes: None when absent or of another shape."""
    at = body.find(core.ObjectIdentifier(oid).dump())
    if at < 0:
        return None
    value = body[at + len(core.ObjectIdentifier(oid).dump()) :][:5]
    if len(value) == 5 and value[0] == 0x31 and value[1] == 3 and value[3] == 1:
        return chr(value[4])
    return None


def status_problem(body: bytes) -> str | None:
    """None for a CertRep whose pkiStatus is SUCCESS; otherwise what it says instead."""
    status = _attribute_value(body, OID_PKI_STATUS)
    if status == PkiStatus.SUCCESS.value:
        return None
    if status is None:
        return f"no pkiStatus in the answer: {body[:80]!r}"
    fail = _attribute_value(body, OID_FAIL_INFO)
    reason = f" {FAIL_NAMES.get(fail, fail)}" if fail is not None else ""
    return f"{STATUS_NAMES.get(status, status)}{reason}"


async def run(job: dict[str, object]) -> dict[str, object]:
    requests = read_requests(Path(str(job["requests"])))
    host, port, pid = str(job["host"]), int(str(job["port"])), int(str(job["pid"]))
    warmup, seconds = float(str(job["warmup"])), float(str(job["seconds"]))
    kinds: Counter[str] = Counter()

    def check(body: bytes) -> str | None:
        problem = status_problem(body)
        kinds[problem or "SUCCESS"] += 1
        return problem

    cpu: list[float] = []

    async def read_cpu(at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        cpu.append(cpu_seconds(pid))

    opened = time.monotonic() + warmup
    readers = [asyncio.create_task(read_cpu(opened)), asyncio.create_task(read_cpu(opened + seconds))]
    result: LoadResult = await run_asyncio(
        host,
        port,
        requests,
        concurrency=int(str(job["concurrency"])),
        seconds=seconds,
        warmup=warmup,
        check=check,
        once=True,
        timeout=float(str(job["timeout"])),
    )
    await asyncio.gather(*readers)
    out: dict[str, object] = asdict(result)
    out["cpu_seconds"] = cpu[1] - cpu[0]
    out["answers"] = dict(kinds)  # each 200 answer in the window by pkiStatus (and failInfo)
    return out


if __name__ == "__main__":
    job = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(uvloop.run(run(job))), flush=True)
