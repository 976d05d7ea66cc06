"""Probe one endpoint: its chain, the protocol versions and weak suites it accepts, and what is wrong.

Handshakes, all within one deadline for the endpoint (CLM-06):
1. every version up to TLS 1.3 with authenticated suites: the chain, and the highest version;
2. versions below the last one found, highest first, until the endpoint refuses (so a modern server
   costs two: TLS 1.2, then a refused TLS 1.1-or-older; a TLS 1.3-only one costs one);
3. a ClientHello offering only weak suites, up to TLS 1.2, when the endpoint accepts any version up
   to TLS 1.2 (or no authenticated suite at all): read up to the ServerHello (weak_suites).
So 4 handshakes for a usual TLS 1.2 + 1.3 server, 2 for a TLS 1.3-only one, at most 5 (6 where
OpenSSL still has SSLv3).
When the deadline passes, what was learnt before it is reported along with a timeout finding.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from OpenSSL import SSL

from server.discovery.chain_checks import check_chain
from server.discovery.channel import ProbeFailure
from server.discovery.findings import Finding, finding
from server.discovery.handshake import (
    AUTHENTICATED_CIPHERS,
    VERSION_BY_NAME,
    VERSIONS,
    Handshake,
    client_context,
    handshake,
    lowest_version,
)
from server.discovery.targets import Endpoint
from server.discovery.weak_suites import weak_suite

DEFAULT_MAX_CHAIN_BYTES = 256 * 1024
_OLD_VERSION_CODES = {"SSLv3": "protocol-sslv3", "TLSv1": "protocol-tls1.0", "TLSv1.1": "protocol-tls1.1"}


@dataclass(frozen=True)
class EndpointReport:
    """What one endpoint presented; a plain value, for the caller to store or show."""

    endpoint: Endpoint
    chain: tuple[bytes, ...]  # DER as presented, leaf first (empty if no certificate was seen)
    protocols: tuple[str, ...]  # accepted, oldest first, among "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"
    weak_ciphers: tuple[str, ...]  # the weak suite the endpoint chose when offered only those (OpenSSL's name)
    findings: tuple[Finding, ...]
    error: str | None  # None when a handshake succeeded, else what stopped the first one
    elapsed: float  # seconds, all handshakes together


@dataclass
class _Progress:
    """What the handshakes have shown so far, kept when the deadline cuts the probe short."""

    stage: str = "connecting"
    chain: tuple[bytes, ...] | None = None
    protocols: set[str] = field(default_factory=set)
    weak_ciphers: list[str] = field(default_factory=list)
    failures: list[Finding] = field(default_factory=list)
    error: str | None = None  # the first failure, which is the report's error unless a handshake completed

    def record(self, result: Handshake) -> None:
        self.protocols.add(result.version)
        if self.chain is None:
            self.chain = result.chain

    def fail(self, code: str, detail: str) -> None:
        self.failures.append(finding(code, detail))
        if self.error is None:
            self.error = detail


async def probe_endpoint(
    endpoint: Endpoint,
    *,
    timeout: float,
    trust: Sequence[x509.Certificate],
    now: dt.datetime,
    max_chain_bytes: int = DEFAULT_MAX_CHAIN_BYTES,
) -> EndpointReport:
    """Everything the endpoint presents, within ``timeout`` seconds for all its handshakes together."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    started = time.monotonic()
    progress = _Progress()
    try:
        async with asyncio.timeout(timeout):
            await _probe(endpoint, progress, max_chain_bytes)
    except TimeoutError:
        progress.fail("timeout", f"the {timeout:g} s deadline passed while {progress.stage}")
    chain = progress.chain or ()
    protocols = tuple(name for _, name in VERSIONS if name in progress.protocols)
    findings = [
        *progress.failures,
        *(finding(_OLD_VERSION_CODES[name], f"{name} accepted") for name in protocols if name in _OLD_VERSION_CODES),
        *(finding("weak-cipher", f"{name} accepted") for name in progress.weak_ciphers),
        *check_chain(chain, trust=trust, now=now, server_name=endpoint.server_name),
    ]
    return EndpointReport(
        endpoint=endpoint,
        chain=chain,
        protocols=protocols,
        weak_ciphers=tuple(progress.weak_ciphers),
        findings=tuple(findings),
        error=None if progress.protocols else progress.error,
        elapsed=time.monotonic() - started,
    )


async def _probe(endpoint: Endpoint, progress: _Progress, max_bytes: int) -> None:
    progress.stage = "handshaking with any version"
    try:
        main = await handshake(endpoint, client_context(SSL.TLS1_3_VERSION, AUTHENTICATED_CIPHERS), max_bytes=max_bytes)
    except ProbeFailure as failure:
        if failure.chain:
            # Refused after its certificates (a client certificate required, say): keep them.
            progress.chain = failure.chain
            progress.fail(failure.code, f"{failure.detail} (after the server's certificates)")
            return
        if failure.code != "handshake-failed":
            progress.fail(failure.code, failure.detail)
            return
        # No authenticated suite accepted: perhaps anonymous or NULL ones are.
        weak_failure = await _weak_suites(endpoint, progress, max_bytes)
        if weak_failure is not None:
            worse = failure if weak_failure.code == "handshake-failed" else weak_failure
            progress.fail(worse.code, worse.detail)
        return
    progress.record(main)
    if await _older_versions(endpoint, progress, max_bytes) and _oldest(progress) <= SSL.TLS1_2_VERSION:
        await _weak_suites(endpoint, progress, max_bytes)


def _oldest(progress: _Progress) -> int:
    return min(VERSION_BY_NAME[name] for name in progress.protocols)


async def _weak_suites(endpoint: Endpoint, progress: _Progress, max_bytes: int) -> ProbeFailure | None:
    """One ClientHello offering only weak suites (TLS 1.2 and older); how it failed when none was taken."""
    progress.stage = "offering weak suites"
    try:
        chosen = await weak_suite(endpoint, max_bytes=max_bytes)
    except ProbeFailure as failure:
        return failure
    if chosen is None:
        return ProbeFailure("handshake-failed", "no suite offered was accepted")
    version, suite = chosen
    progress.record(Handshake(version, suite, chain=()))
    progress.weak_ciphers.append(suite)
    return None


async def _older_versions(endpoint: Endpoint, progress: _Progress, max_bytes: int) -> bool:
    """Versions below those found, highest first, until refused; False when the endpoint failed
    in another way (the failure is recorded and the probe stops)."""
    lowest = lowest_version()
    while True:
        below = _oldest(progress)
        older = [(number, name) for number, name in VERSIONS if lowest <= number < below]
        if not older:
            return True
        number, name = older[-1]
        progress.stage = f"offering {name} or older"
        try:
            result = await handshake(endpoint, client_context(number, AUTHENTICATED_CIPHERS), max_bytes=max_bytes)
        except ProbeFailure as failure:
            if failure.code == "handshake-failed":
                return True
            progress.fail(failure.code, f"{progress.stage}: {failure.detail}")
            return False
        if VERSION_BY_NAME.get(result.version, below) >= below:
            return True  # not older after all: nothing more to learn
        progress.record(result)
