"""Summarise a py-spy raw profile of bench_core.py: where the issuance hot path spends its time.

    pip install py-spy   # into the venv
    timeout 900 python bench/bench_core.py --backends sw-p256 --dbs postgresql --modes async \
        --concurrency 32 --no-lint-rows --seconds 15 &
    sleep 8; py-spy record --gil --pid $(pgrep -f '^.*python bench/bench_core.py') -d 8 -r 250 -f raw -o spy.txt
    python bench/core_spy.py spy.txt

(Attach to the python process itself, not to a wrapper such as `timeout`.)
bench_core.py --profile MODE attaches py-spy itself, for the measured window only, sampling
the thread that holds the GIL (--gil): cryptography holds the GIL while it signs, so that
thread's time is what limits the rate. Each sample is charged to the first matching
bucket (buckets in the order listed: the first bucket any frame of the stack matches),
so the buckets add up to 100%.
"""

from __future__ import annotations

import re
import sys
from collections import Counter

# (bucket, regex on one frame), by priority: a sample goes to the first bucket any of its frames matches.
BUCKETS: list[tuple[str, str]] = [
    ("crypto: verify real signature (CORE-11)", r"^verify_bytes "),
    ("crypto: real signature", r"^sign_bytes |^TokenEllipticCurveKey.sign|^Pkcs11Signer"),
    ("crypto: TBS twin: builder + placeholder (or throwaway) sign", r"^Issuer.lint_certificate "),
    (
        "crypto: assemble/parse/serialise signed cert",
        r"^Issuer._sign_and_check |^certificate_parts |"
        r"^assemble_certificate ",
    ),
    ("policy (decide/build_template)", r"^CertificateAuthority.decide "),
    ("audit chain (hash, json, insert rows)", r"append_events |^event_hash "),
    ("SQL: intent INSERT (build+compile+execute)", r"^CertificateRepository.insert_intent |insert_intent "),
    ("SQL: result UPDATE (build+compile+execute)", r"^CertificateRepository.record_result |record_result "),
    ("SQL: transaction begin/commit, pool, run_sync", r"sqlalchemy/|asyncpg/|psycopg/|aiosqlite/|sqlite3"),
    ("issuer: values/event dicts, json, sha256", r"^Issuer.issue "),
    ("group committer bookkeeping", r"^GroupCommitter"),
    ("asyncio event loop / futures", r"asyncio/"),
    ("bench driver", r"bench_core.py"),
]


def summarise(path: str, seconds: float | None = None, rate: int = 250) -> str:
    buckets: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in open(path):
        line = line.rstrip("\n")
        if not line:
            continue
        stack_text, _, count_text = line.rpartition(" ")
        frames = stack_text.split(";")
        count = int(count_text)
        total += count
        seen = set()
        for f in frames:
            name = f.split(" (")[0]
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
        bucket = next((b for b, rx in BUCKETS if any(re.search(rx, f) for f in frames)), None)
        buckets[bucket or "other: " + frames[-1].split(" (")[0]] += count
    busy = f", GIL held {100 * total / (seconds * rate):.0f}% of the time" if seconds else ""
    out = [f"{total} samples of the thread holding the GIL{busy}", "", "| bucket | share |", "|---|---:|"]
    for name, n in buckets.most_common():
        out.append(f"| {name} | {100 * n / total:.1f}% |")
    out += ["", "inclusive (top 40 functions):"]
    for name, n in inclusive.most_common(40):
        out.append(f"  {100 * n / total:5.1f}%  {name}")
    return "\n".join(out)


if __name__ == "__main__":
    print(summarise(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else None))
