"""The CMP benchmark's load generator, run as its own process by bench_cmp.py: pre-built ir
messages POSTed over plain HTTP (loadgen.run_asyncio on uvloop), each sent once (a CMP server
remembers transactionIDs; JOB's "once" false cycles them, for a server that remembers nothing), every
answer's body type and PKIStatus read.

    python bench/cmp_loadgen.py JOB.json     # prints one JSON object: the result

JOB names the server (host, port, PID), the raw requests file (loadgen's '<length>\\n<bytes>'
format), concurrency, warm-up, measured and timeout seconds. The server's CPU time (utime +
stime of it and its children, /proc/PID/stat) is read when the measured window opens and when
it closes, in this process, so the window and the CPU reading coincide (bench_scep's method).

Every CMP answer is HTTP 200, errors included, so each one is read: a walk over a few DER
headers (protocols.cmp.der.read_tlv) to the body's CHOICE tag and the first PKIStatus, not a
pyasn1 decode, so that checking costs the generator microseconds and not the server's share of
the two cores. bench_cmp.py parses a sample of replies in full before each row.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_acme import cpu_seconds
from est_loadgen import read_requests
from loadgen import LoadResult, run_asyncio

from protocols.cmp.bodies import PkiStatus
from protocols.cmp.der import Tlv, children, read_tlv
from protocols.cmp.errors import CmpFailure, FailInfo

REPLY_BODIES = {0xA1: "ip", 0xA3: "cp", 0xA8: "kup", 0xB7: "error", 0xBA: "pollRep", 0xB3: "pkiconf"}


def _status_info(data: bytes, info: Tlv) -> str:
    """'accepted', or 'rejection badPOP' and the like, from a PKIStatusInfo."""
    parts = children(data, info)
    status = PkiStatus(int.from_bytes(parts[0].inner(data), "big"))
    bits = next((p for p in parts[1:] if p.tag == 0x03), None)
    if bits is None:
        return status.name
    octets = bits.inner(data)[1:]
    names = [FailInfo(i).name for i in range(len(octets) * 8) if octets[i // 8] & (0x80 >> (i % 8)) and i < 27]
    return " ".join([status.name, *names])


def answer_kind(data: bytes) -> str:
    """What a reply says, in one word or two: 'ip accepted', 'error rejection badMessageCheck'."""
    try:
        top = read_tlv(data, 0, len(data))
        body = children(data, top)[1]
        kind = REPLY_BODIES.get(body.tag, f"body tag {body.tag:#x}")
        content = children(data, body)[0]
        if kind == "error":
            return f"error {_status_info(data, children(data, content)[0])}"
        if kind in ("ip", "cp", "kup"):
            responses = next(part for part in children(data, content) if part.tag == 0x30)
            response = children(data, responses)[0]
            return f"{kind} {_status_info(data, children(data, response)[1])}"
        return kind
    except (CmpFailure, IndexError, StopIteration, ValueError) as exc:
        return f"not a PKIMessage ({type(exc).__name__}): {data[:40]!r}"


def issued(kind: str) -> bool:
    return kind in ("ip accepted", "cp accepted", "kup accepted")


async def run(job: dict[str, object]) -> dict[str, object]:
    requests = read_requests(Path(str(job["requests"])))
    host, port, pid = str(job["host"]), int(str(job["port"])), int(str(job["pid"]))
    warmup, seconds = float(str(job["warmup"])), float(str(job["seconds"]))
    kinds: Counter[str] = Counter()

    def check(body: bytes) -> str | None:
        kind = answer_kind(body)
        kinds[kind] += 1
        return None if issued(kind) else kind

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
        once=bool(job["once"]),
        timeout=float(str(job["timeout"])),
    )
    await asyncio.gather(*readers)
    out: dict[str, object] = asdict(result)
    out["cpu_seconds"] = cpu[1] - cpu[0]
    out["answers"] = dict(kinds)  # the 200 answers inside the window, by body type and status
    return out


if __name__ == "__main__":
    job = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(uvloop.run(run(job))), flush=True)
