"""Where one CMP ir's server CPU goes in Tetra, in one process: the server's own Responder
(protocols/cmp, built by CmpHandlers from a ProtocolContext as `tetra serve` builds it, on
bench_core's CA directory and SQLite store) answering pre-built irs in a hot loop, timed with
process CPU time, then the same loop under cProfile, its functions summed into buckets (pyasn1
decoding and encoding, cryptography, the store, asyncio, protocols.cmp, ca); beside the message
layer's steps alone (decode, MAC check, CRMF POP check, reply build) on one message.

    python bench/cmp_breakdown.py [--rounds 400] [--protection mac|sig] [--top 25]

No HTTP and no concurrency: a floor for what `tetra serve` spends per ir (bench_cmp.py measures
that), and the place to see what to make cheaper.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core_setup
from cmp_setup import REFERENCE, SECRET, SIGNER_NAME, Credentials, der_credentials, enrolment
from core_setup import BENCH_PROFILE

from ca.crmf import enrollment_from_cert_req_msg
from ca.enrollment import AuthMethod, Requester
from protocols.cmp.config import MacLimits
from protocols.cmp.handlers import CmpHandlers
from protocols.cmp.message import decode_message
from protocols.cmp.protection import verify_mac, verify_signature_protection
from protocols.cmp.responder import Responder
from server.wiring import build_ca, protocol_context, read_config
from tests import cmp_client

BUCKETS = [  # first match wins: (bucket, substring of the code's file path)
    ("pyasn1 decoder", "pyasn1/codec/ber/decoder"),
    ("pyasn1 encoder", "pyasn1/codec/ber/encoder"),
    ("pyasn1 codec (cer/der)", "pyasn1/codec"),
    ("pyasn1 types", "pyasn1/type"),
    ("pyasn1 other", "pyasn1"),
    ("cryptography", "cryptography"),
    ("SQLAlchemy", "sqlalchemy"),
    ("sqlite3 / aiosqlite", "sqlite"),
    ("asyncio", "asyncio"),
    ("protocols/cmp", "protocols/cmp"),
    ("ca/store", "ca/store"),
    ("ca (core)", "/ca/"),
    ("tests/cmp_client (not server work)", "tests/cmp_client"),
]


async def cpu_ms(rounds: int, step: Callable[[int], Awaitable[object]]) -> float:
    await step(0)
    start = time.process_time()
    for index in range(rounds):
        await step(index)
    return (time.process_time() - start) * 1e3 / rounds


IDLE = "(event loop idle: waiting for the store's thread and fsync; not CPU)"


def bucket_of(filename: str, function: str) -> str:
    if function == "<method 'poll' of 'select.epoll' objects>":
        return IDLE
    return next((name for name, part in BUCKETS if part in filename), "other (stdlib, builtins)")


def profile_buckets(
    profiler: cProfile.Profile, rounds: int, top: int
) -> tuple[list[tuple[str, float]], list[tuple[str, float]], str]:
    """Own time per bucket (ms per ir); the callers outside pyasn1 of pyasn1's decode and encode
    entry points with their cumulative time (ms per ir); and the top functions by own time."""
    stats = pstats.Stats(profiler)
    table = stats.stats  # type: ignore[attr-defined]
    own: Counter[str] = Counter()
    entries: Counter[str] = Counter()  # float values
    for (filename, _, function), (_, _, tottime, _, callers) in table.items():
        own[bucket_of(filename, function)] += tottime * 1e3 / rounds
        if "pyasn1/codec/ber/" in filename and function == "__call__":
            for (caller_file, caller_line, caller_function), (_, _, _, cumtime) in callers.items():
                if "pyasn1" not in caller_file:
                    where = f"{Path(caller_file).parent.name}/{Path(caller_file).name}:{caller_line}({caller_function})"
                    entries[f"{'decode' if 'decoder' in filename else 'encode'} from {where}"] += cumtime * 1e3 / rounds
    text = io.StringIO()
    stats.stream = text  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(top)
    return (
        [(k, float(v)) for k, v in own.most_common()],
        [(k, float(v)) for k, v in entries.most_common()],
        text.getvalue(),
    )


async def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="tetra-cmp-breakdown-"))
    ca_dir = await core_setup.make_ca_dir(work / "ca", "sw-p256")
    with (ca_dir / "tetra.toml").open("a") as config_file:
        config_file.write(f'\n[cmp]\ndefault_profile = "{BENCH_PROFILE}"\n')
    fresh = core_setup.fresh_database("sqlite", work / "db", "breakdown")
    environ = {"TETRA_DATABASE__URL": json.dumps(fresh.url), "TETRA_SERVER__PROTOCOLS": '["cmp"]'}
    config = read_config(ca_dir / "tetra.toml", environ=environ)
    ca = await build_ca(config)
    try:
        await ca.credentials.create_mac_key(
            "cmp", key_id=REFERENCE, profile=BENCH_PROFILE, secret=SECRET.encode(), actor="bench"
        )
        responder: Responder = CmpHandlers(protocol_context("cmp", ca, config)).responder
        profile = ca.profiles[BENCH_PROFILE]
        credentials = Credentials("mac")
        if args.protection == "sig":
            request, key = enrolment(Credentials("mac", name=SIGNER_NAME), 0)
            reply = cmp_client.read_reply(await responder.answer(profile, request.der))
            assert reply.certificate is not None, (reply.kind, reply.fail_info, reply.text)
            credentials = der_credentials(key, reply.certificate, SIGNER_NAME)
        total = 2 * args.rounds + 2
        messages = [enrolment(credentials, i)[0].der for i in range(total)]

        async def answer(index: int) -> None:
            reply = await responder.answer(profile, messages[index])
            assert reply[:1] == b"\x30"

        ms = await cpu_ms(args.rounds, answer)
        first = cmp_client.read_reply(await responder.answer(profile, messages[-1]))
        assert first.kind == "ip" and first.certificate is not None, (first.kind, first.fail_info, first.text)
        profiler = cProfile.Profile()
        offset = args.rounds + 1
        profiler.enable()
        for index in range(args.rounds):
            await responder.answer(profile, messages[offset + index])
        profiler.disable()

        one = messages[0]
        decoded = decode_message(one)
        requester = Requester(f"cmp:{REFERENCE}", AuthMethod.SHARED_SECRET)
        check_name = "MAC check (500 x SHA-256 + HMAC)"

        def check() -> object:
            return verify_mac(decoded, SECRET.encode(), config_limits(responder))

        if args.protection == "sig":
            check_name = "signature check (parse extraCerts[0] + ECDSA verify; trust path not included)"

            def check() -> object:
                verify_signature_protection(decoded, decoded.extra_certs()[0])
                return None

        steps: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
            ("decode_message (scan + pyasn1 header and body)", lambda _: _now(lambda: decode_message(one))),
            (check_name, lambda _: _now(check)),
            (
                "CRMF: POP verify + template -> EnrollmentRequest (ca/crmf)",
                lambda _: _now(
                    lambda: enrollment_from_cert_req_msg(
                        decoded.body["ir"][0], profile_name=BENCH_PROFILE, requester=requester
                    )
                ),
            ),
        ]
        print(f"# CMP ir in Tetra, in-process ({args.protection}, {args.rounds} irs, one at a time)\n")
        print(f"Responder.answer, whole ir -> ip with issuance and store: **{ms:.2f} ms CPU per ir**\n")
        print("| message-layer step alone | ms |\n|---|---:|")
        for name, step in steps:
            print(f"| {name} | {await cpu_ms(args.rounds, step):.3f} |")
        buckets, entries, top = profile_buckets(profiler, args.rounds, args.top)
        print("\nUnder cProfile (which inflates call-heavy code such as pyasn1), own time per ir by bucket:\n")
        print("| bucket | ms per ir | share of the busy time |\n|---|---:|---:|")
        busy = sum(value for name, value in buckets if name != IDLE)
        for name, value in buckets:
            print(f"| {name} | {value:.2f} | {'' if name == IDLE else f'{value / busy:.0%}'} |")
        print("\npyasn1 decode/encode calls by caller (cumulative, under cProfile):\n")
        print("| entry | ms per ir |\n|---|---:|")
        for name, value in entries:
            print(f"| {name} | {value:.2f} |")
        print(f"\nTop {args.top} functions by own time:\n\n```\n{top.strip()}\n```")
    finally:
        await ca.close()
        fresh.drop()


def config_limits(responder: Responder) -> MacLimits:
    return responder.config.mac_limits


async def _now(call: Callable[[], object]) -> object:
    return call()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--protection", choices=["mac", "sig"], default="mac")
    parser.add_argument("--top", type=int, default=25)
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
