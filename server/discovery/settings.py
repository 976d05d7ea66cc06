"""The [discovery] config section: bounds for every scan, and the scans that run on a schedule.

```toml
[discovery]
max_endpoints = 65536          # a scan of more address:port pairs is refused before any packet (CLM-05)
allow = ["10.0.0.0/8"]         # if given, every target must lie inside; names are checked once resolved
ports = [443]                  # when a scan names none
concurrency = 200
timeout_seconds = 5            # per endpoint, all its handshakes together
max_file_bytes = 8388608       # larger files are skipped unread
passphrases_file = "p12.txt"   # one per line, tried on PKCS#12 and Java keystores

[discovery.schedules.datacentre]
targets = ["10.1.0.0/22", "mail.example.com"]
ports = [443, 8443, 25, 636]
every = "24h"

[discovery.schedules.web-servers-disk]
paths = ["/etc/ssl", "/srv"]
every = "6h"
```
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ca.durations import parse_duration
from ca.errors import ConfigError
from ca.tomlread import Table

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Schedule:
    name: str
    every: dt.timedelta
    targets: tuple[str, ...] = ()  # a network scan...
    ports: tuple[int, ...] = ()
    paths: tuple[Path, ...] = ()  # ...or a file-system scan


@dataclass(frozen=True)
class DiscoverySettings:
    max_endpoints: int = 65536
    allow: tuple[IPNetwork, ...] | None = None
    ports: tuple[int, ...] = (443,)
    concurrency: int = 200
    timeout_seconds: float = 5.0
    max_file_bytes: int = 8 * 1024 * 1024
    passphrases_file: Path | None = None
    schedules: tuple[Schedule, ...] = ()

    def passphrases(self) -> list[bytes]:
        """Read when a scan starts, so the file can change without a restart."""
        if self.passphrases_file is None:
            return []
        try:
            lines = self.passphrases_file.read_bytes().splitlines()
        except OSError as exc:
            raise ConfigError(f"discovery.passphrases_file {self.passphrases_file}: {exc.strerror}") from None
        return [line for line in lines if line]


def parse_discovery(table: Table, base: Path) -> DiscoverySettings:
    defaults = DiscoverySettings()
    max_endpoints = table.get("max_endpoints", int, defaults.max_endpoints)
    concurrency = table.get("concurrency", int, defaults.concurrency)
    timeout = table.get("timeout_seconds", float, defaults.timeout_seconds)
    max_file_bytes = table.get("max_file_bytes", int, defaults.max_file_bytes)
    for key, value in (
        ("max_endpoints", max_endpoints),
        ("concurrency", concurrency),
        ("max_file_bytes", max_file_bytes),
    ):
        if value < 1:
            raise table.error(key, "must be at least 1")
    if not timeout > 0:
        raise table.error("timeout_seconds", "must be a positive number of seconds")
    allow = None
    if table.has("allow"):
        allow = tuple(_network(table, text) for text in table.strings("allow"))
    ports = _ports(table, table.get("ports", list, list(defaults.ports)))
    phrases = table.get("passphrases_file", str, "")
    schedules = tuple(_schedule(name, t, base) for name, t in table.tables("schedules").items())
    table.finish()
    return DiscoverySettings(
        max_endpoints=max_endpoints,
        allow=allow,
        ports=tuple(ports),
        concurrency=concurrency,
        timeout_seconds=timeout,
        max_file_bytes=max_file_bytes,
        passphrases_file=(base / phrases) if phrases else None,
        schedules=schedules,
    )


def _schedule(name: str, t: Table, base: Path) -> Schedule:
    try:
        every = parse_duration(t.get("every", str))
    except ValueError as exc:
        raise t.error("every", str(exc)) from None
    if every < dt.timedelta(minutes=1):
        raise t.error("every", "must be at least a minute")
    targets = tuple(t.strings("targets", []))
    paths = tuple(base / p for p in t.strings("paths", []))
    ports = tuple(_ports(t, t.get("ports", list, [])))
    t.finish()
    if bool(targets) == bool(paths):
        raise ConfigError(f"{t.where('targets')}: a schedule scans either targets (the network) or paths (files)")
    return Schedule(name=name, every=every, targets=targets, ports=ports, paths=paths)


def _ports(table: Table, values: list[object]) -> list[int]:
    if not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535 for v in values):
        raise table.error("ports", "expected a list of port numbers from 1 to 65535")
    return [int(v) for v in values]  # type: ignore[call-overload]


def _network(table: Table, text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise table.error("allow", f"{text!r} is not an address or CIDR range") from None
