"""Discovery against peers that misbehave: each is cut within its deadline or its byte cap, reported
with a finding, and a scan of all of them together still reports the good endpoint (CLM-06)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator
from pathlib import Path

from server.discovery.endpoint_scan import scan_endpoints
from server.discovery.targets import Endpoint
from server.discovery.tls_probe import EndpointReport, probe_endpoint
from tests.discovery_pki import LEAF_NAME, der, shared_pki
from tests.discovery_servers import (
    SilentGauge,
    endless_smtp_greeting,
    garbage,
    refused_port,
    serve,
    server_context,
    silent,
    tls_once_then_silent,
    trickle,
    until_closed,
)

DEADLINE = 1.0
SLACK = 0.5  # loop scheduling on a loaded 2-core machine


def endpoint(port: int, starttls: str | None = None) -> Endpoint:
    return Endpoint("127.0.0.1", port, "127.0.0.1", LEAF_NAME, starttls)


async def probe(port: int, *, starttls: str | None = None, max_chain_bytes: int = 256 * 1024) -> EndpointReport:
    return await probe_endpoint(
        endpoint(port, starttls),
        timeout=DEADLINE,
        trust=[shared_pki().root.cert],
        now=dt.datetime.now(dt.UTC),
        max_chain_bytes=max_chain_bytes,
    )


def only_finding(report: EndpointReport) -> tuple[str, str]:
    assert len(report.findings) == 1, report.findings
    return report.findings[0].code, report.findings[0].detail


async def test_garbage_is_not_tls() -> None:
    """An HTTP answer where a ServerHello was expected: not-tls at once, with the bytes quoted (CLM-06)."""
    async with serve(garbage) as port:
        report = await probe(port)
    code, detail = only_finding(report)
    assert code == "not-tls" and "HTTP/1.1 400" in detail
    assert report.error == detail and report.chain == ()
    assert report.elapsed < DEADLINE / 2


async def test_silence_and_trickle_are_cut_at_the_deadline() -> None:
    """A peer that never answers and one that sends a byte at a time: timeout, at the deadline (CLM-06)."""
    for handler in (silent, trickle(interval=0.2)):
        async with serve(handler) as port:
            started = time.monotonic()
            report = await probe(port)
            took = time.monotonic() - started
        code, detail = only_finding(report)
        assert code == "timeout" and detail == report.error
        assert "handshaking with any version" in detail
        assert DEADLINE <= took < DEADLINE + SLACK


async def test_what_was_learnt_before_the_deadline_is_kept(tmp_path: Path) -> None:
    """A server that goes silent after its first handshake: the chain and TLS 1.3 kept, no error,
    and a timeout finding naming the step that was cut (CLM-06)."""
    pki = shared_pki()
    context = server_context(tmp_path, [pki.leaf.cert, pki.intermediate.cert], pki.leaf.key)
    async with serve(tls_once_then_silent(context)) as port:
        report = await probe(port)
    assert report.error is None
    assert report.chain == der(pki.leaf.cert, pki.intermediate.cert)
    assert report.protocols == ("TLSv1.3",)
    code, detail = only_finding(report)
    assert code == "timeout" and "offering TLSv1.2 or older" in detail


async def test_a_huge_chain_is_not_read(tmp_path: Path) -> None:
    """A 1 MiB certificate: chain-too-large long before the deadline (OpenSSL's own 100 KiB message
    limit, inside the probe's byte cap); a 40 KiB one against a 16 KiB cap: the probe's own count (CLM-06)."""
    pki = shared_pki()
    huge = pki.leaf_from_intermediate(padding_bytes=1024 * 1024)
    async with serve(until_closed, tls=server_context(tmp_path, [huge.cert], huge.key)) as port:
        report = await probe(port)
    code, detail = only_finding(report)
    assert code == "chain-too-large" and report.error == detail
    assert report.elapsed < DEADLINE / 2
    large = pki.leaf_from_intermediate(padding_bytes=40 * 1024)
    async with serve(until_closed, tls=server_context(tmp_path, [large.cert], large.key)) as port:
        capped = await probe(port, max_chain_bytes=16 * 1024)
        uncapped = await probe(port)
    assert only_finding(capped) == ("chain-too-large", "more than 16384 bytes of handshake")
    assert uncapped.error is None and uncapped.chain == der(large.cert)


async def test_an_endless_starttls_greeting_is_cut() -> None:
    """An SMTP greeting that never ends: starttls-failed after the line limit, not at the deadline (CLM-06)."""
    async with serve(endless_smtp_greeting) as port:
        report = await probe(port, starttls="smtp")
    code, detail = only_finding(report)
    assert code == "starttls-failed" and "more than 100 lines" in detail
    assert report.elapsed < DEADLINE / 2


@contextlib.asynccontextmanager
async def hostile_and_good(tmp_path: Path) -> AsyncIterator[dict[int, str]]:
    """Ports of a good TLS server and of every hostile peer, by what each is."""
    pki = shared_pki()
    huge = pki.leaf_from_intermediate(padding_bytes=1024 * 1024)
    good = server_context(tmp_path, [pki.leaf.cert, pki.intermediate.cert], pki.leaf.key)
    async with contextlib.AsyncExitStack() as stack:
        ports = {
            await stack.enter_async_context(serve(silent)): "silent",
            await stack.enter_async_context(serve(trickle(interval=0.2))): "trickle",
            await stack.enter_async_context(serve(garbage)): "garbage",
            await stack.enter_async_context(
                serve(until_closed, tls=server_context(tmp_path, [huge.cert], huge.key))
            ): "huge",
            refused_port(): "refused",
            await stack.enter_async_context(serve(until_closed, tls=good)): "good",
        }
        yield ports


async def test_a_scan_of_hostile_peers_still_reports_the_good_one(tmp_path: Path) -> None:
    """Six endpoints, three at a time, the two slow peers first: every one reported with its finding,
    the good one intact, as each finishes (the quick ones through the third slot while the slow
    ones wait out their deadline), in about one deadline in all (CLM-06)."""
    expected = {
        "silent": ["timeout"],
        "trickle": ["timeout"],
        "garbage": ["not-tls"],
        "huge": ["chain-too-large"],
        "refused": ["refused"],
        "good": [],
    }
    async with hostile_and_good(tmp_path) as ports:
        started = time.monotonic()
        reports = [
            report
            async for report in scan_endpoints(
                [endpoint(port) for port in ports],
                concurrency=3,
                timeout=DEADLINE,
                trust=[shared_pki().root.cert],
                now=dt.datetime.now(dt.UTC),
            )
        ]
        took = time.monotonic() - started
    kinds = [ports[report.endpoint.port] for report in reports]
    assert sorted(kinds) == sorted(expected)
    assert {ports[r.endpoint.port]: [f.code for f in r.findings] for r in reports} == expected
    good = next(r for r in reports if ports[r.endpoint.port] == "good")
    assert good.error is None and good.protocols == ("TLSv1.2", "TLSv1.3")
    assert kinds[-2:] in (["silent", "trickle"], ["trickle", "silent"])
    assert took < DEADLINE + SLACK


async def test_closing_a_scan_early_cancels_its_probes(tmp_path: Path) -> None:
    """Leaving the scan after the first report: the probes still waiting on silent peers are cancelled."""
    async with serve(silent) as silent_port, serve(garbage) as garbage_port:
        endpoints = [endpoint(garbage_port)] + [endpoint(silent_port)] * 3
        started = time.monotonic()
        scan = scan_endpoints(endpoints, concurrency=4, timeout=30, trust=[], now=dt.datetime.now(dt.UTC))
        async with contextlib.aclosing(scan):
            first = await anext(scan)
        assert first.endpoint.port == garbage_port
        await asyncio.sleep(0)
        probes = [t for t in asyncio.all_tasks() if "probe_endpoint" in repr(t.get_coro())]
        assert probes == []
        assert time.monotonic() - started < 1


async def test_a_scan_keeps_to_its_concurrency() -> None:
    """Ten silent endpoints, three at a time: never more than three connections open at the peer,
    and every endpoint reported with its timeout (CLM-06)."""
    gauge = SilentGauge()
    async with serve(gauge) as port:
        reports = [
            report
            async for report in scan_endpoints(
                [endpoint(port)] * 10, concurrency=3, timeout=0.2, trust=[], now=dt.datetime.now(dt.UTC)
            )
        ]
    assert gauge.most == 3
    assert [[f.code for f in r.findings] for r in reports] == [["timeout"]] * 10
