"""One discovery scan from start to finish: targets checked, probes run, results into the inventory.

The targets are expanded and checked against the cap and the allow-list before the scan is
even recorded, so a refused scan sends no packet and leaves no row (CLM-05). Results are written
in batches as they arrive, so a long scan interrupted half-way keeps what it found, and its
record says 'failed' with the reason. File scans walk the disk in a worker thread, a chunk at a
time, so the event loop (and a server's other work) keeps running.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ca.inventory.facts import parse_der_certificate
from ca.inventory.scans import FindingNote, LocationResult
from ca.service import CertificateAuthority
from server.discovery.endpoint_scan import scan_endpoints
from server.discovery.file_scan import FileReport, scan_paths
from server.discovery.settings import DiscoverySettings
from server.discovery.targets import Endpoint, expand_targets
from server.discovery.tls_probe import EndpointReport
from server.discovery.trust_roots import system_roots

BATCH = 100  # locations per store transaction
FILE_CHUNK = 200  # files examined per trip to the worker thread


@dataclass
class ScanSummary:
    scan_id: int
    kind: str
    locations: int = 0  # endpoints probed, or certificate files read
    answered: int = 0  # endpoints that completed a handshake, files that held certificates
    certificates: int = 0  # distinct certificates seen
    findings: dict[str, int] = field(default_factory=dict)  # by severity
    errors: int = 0  # endpoints that did not answer TLS, files that could not be read
    seconds: float = 0.0
    results: list[LocationResult] = field(default_factory=list)  # kept for the caller to show

    def as_dict(self) -> dict[str, object]:
        return {
            "scan": self.scan_id,
            "kind": self.kind,
            "locations": self.locations,
            "answered": self.answered,
            "certificates": self.certificates,
            "findings": dict(sorted(self.findings.items())),
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
        }


Progress = Callable[[int], None]  # called with how many more locations are done


async def plan_network_scan(
    settings: DiscoverySettings, targets: Sequence[str], ports: Sequence[int]
) -> list[Endpoint]:
    """The endpoints a scan would probe; TargetError (nothing sent) when over the cap or outside
    the allow-list. Only name resolution (DNS, in a worker thread) happens here."""
    return await asyncio.to_thread(
        expand_targets, targets, ports or settings.ports, cap=settings.max_endpoints, allow=settings.allow
    )


async def start_scan(
    ca: CertificateAuthority, kind: str, targets: Sequence[str], *, actor: str, team: str | None = None
) -> int:
    """Record a scan as running (audited as discovery.started); its id."""
    return await ca.scans.start(kind, targets, actor=actor, now=ca.clock.now(), team=team)


async def scan_network(
    ca: CertificateAuthority,
    settings: DiscoverySettings,
    endpoints: Sequence[Endpoint],
    *,
    targets: Sequence[str],
    actor: str,
    progress: Progress | None = None,
    scan_id: int | None = None,
) -> ScanSummary:
    """Probe ``endpoints``; ``scan_id``: the scan already recorded (with start_scan) by a caller
    that answered with its id before running it, as the management API does."""
    await ca.inventory.sync(ca.clock.now())  # so what Tetra issued is known as such when seen
    if scan_id is None:
        scan_id = await start_scan(ca, "network", targets, actor=actor)
    summary = ScanSummary(scan_id, "network")
    trust = [*system_roots(), *ca.roots]
    started = time.monotonic()
    seen: set[bytes] = set()
    batch: list[LocationResult] = []
    status = "failed"
    try:
        probes = scan_endpoints(
            endpoints,
            concurrency=settings.concurrency,
            timeout=settings.timeout_seconds,
            trust=trust,
            now=ca.clock.now(),
        )
        async with aclosing(probes):
            async for report in probes:
                result = endpoint_result(report)
                _count(summary, result, seen, answered=report.error is None)
                batch.append(result)
                if len(batch) >= BATCH:
                    await ca.scans.record(scan_id, batch, at=ca.clock.now())
                    batch = []
                if progress:
                    progress(1)
        if batch:
            await ca.scans.record(scan_id, batch, at=ca.clock.now())
        status = "done"
    finally:
        summary.seconds = time.monotonic() - started
        await asyncio.shield(_finish(ca, summary, status, actor))
    return summary


async def scan_files(
    ca: CertificateAuthority,
    settings: DiscoverySettings,
    paths: Sequence[Path],
    *,
    actor: str,
    passphrases: Sequence[bytes] = (),
    progress: Progress | None = None,
    scan_id: int | None = None,
) -> ScanSummary:
    await ca.inventory.sync(ca.clock.now())
    if scan_id is None:
        scan_id = await start_scan(ca, "files", [str(p) for p in paths], actor=actor)
    summary = ScanSummary(scan_id, "files")
    started = time.monotonic()
    seen: set[bytes] = set()
    walk = scan_paths(
        paths, passphrases=[*passphrases, *settings.passphrases()], max_file_bytes=settings.max_file_bytes
    )
    status = "failed"
    try:
        while chunk := await asyncio.to_thread(_take, walk, FILE_CHUNK):
            results = [file_result(report, ca.clock.now()) for report in chunk]
            for report, result in zip(chunk, results, strict=True):
                _count(summary, result, seen, answered=report.container is not None)
            await ca.scans.record(scan_id, results, at=ca.clock.now())
            if progress:
                progress(len(chunk))
        status = "done"
    finally:
        summary.seconds = time.monotonic() - started
        await asyncio.shield(_finish(ca, summary, status, actor))
    return summary


def endpoint_result(report: EndpointReport) -> LocationResult:
    certificates: list[x509.Certificate] = []
    notes = [FindingNote(f.code, str(f.severity), f.detail) for f in report.findings]
    for der in report.chain:
        try:
            certificates.append(parse_der_certificate(der))
        except ValueError:
            continue  # the probe has said so already (malformed-certificate)
    return LocationResult(
        kind="endpoint",
        location=endpoint_location(report.endpoint),
        certificates=tuple(certificates),
        findings=tuple(notes),
        protocols=report.protocols,
        error=report.error,
    )


def endpoint_location(endpoint: Endpoint) -> str:
    """ "name:port" for a named target, "address:port" otherwise ("[v6]:port")."""
    host = endpoint.server_name or endpoint.address
    return f"[{host}]:{endpoint.port}" if ":" in host else f"{host}:{endpoint.port}"


def file_result(report: FileReport, now: dt.datetime) -> LocationResult:
    if report.container is None:
        return LocationResult(
            kind="file",
            location=str(report.path),
            certificates=(),
            findings=(FindingNote("unreadable", "info", report.skipped or "not read"),),
            error=report.skipped,
        )
    notes = [
        FindingNote("expired", "warning", f"{c.subject.rfc4514_string()} expired {c.not_valid_after_utc:%Y-%m-%d}")
        for c in report.container.certificates
        if c.not_valid_after_utc <= now
    ]
    return LocationResult(
        kind="file", location=str(report.path), certificates=report.container.certificates, findings=tuple(notes)
    )


def _take(walk: Iterator[FileReport], count: int) -> list[FileReport]:
    out: list[FileReport] = []
    for report in walk:
        out.append(report)
        if len(out) >= count:
            break
    return out


def _count(summary: ScanSummary, result: LocationResult, seen: set[bytes], *, answered: bool) -> None:
    summary.locations += 1
    summary.answered += answered
    summary.errors += result.error is not None
    for certificate in result.certificates:
        seen.add(certificate.fingerprint(hashes.SHA256()))
    summary.certificates = len(seen)
    for note in result.findings:
        summary.findings[note.severity] = summary.findings.get(note.severity, 0) + 1
    summary.results.append(result)


async def _finish(ca: CertificateAuthority, summary: ScanSummary, status: str, actor: str) -> None:
    await ca.scans.finish(summary.scan_id, status=status, summary=summary.as_dict(), actor=actor, now=ca.clock.now())
