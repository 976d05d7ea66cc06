"""DNS lookups for validation through a configurable resolver (dnspython).

Tests point it at a loopback server of their own (``[acme.validation] resolver``),
as Pebble does; production uses the system's resolvers. Lookups are never cached
here: each validation asks afresh.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from protocols.acme.va.errors import ValidationError


@dataclass(frozen=True)
class CaaRecord:
    flags: int
    tag: str
    value: str


def under(name: str, domains: tuple[str, ...]) -> bool:
    """True when ``name`` is one of ``domains`` or a name below one of them."""
    name = name.lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in domains)


class Resolver:
    """``demo_loopback_domains``: names that resolve to 127.0.0.1 and have no CAA records,
    without a query (a demo on one machine, where no DNS knows the demo's names)."""

    def __init__(
        self, server: tuple[str, int] | None, timeout: float, demo_loopback_domains: tuple[str, ...] = ()
    ) -> None:
        self._server = server
        self._timeout = timeout
        self._loopback_domains = demo_loopback_domains
        if server is not None:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [server[0]]
            self._resolver.port = server[1]
        else:
            self._resolver = dns.asyncresolver.Resolver()
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        self._resolver.cache = None

    async def _query(self, name: str, rdtype: str) -> list[object] | None:
        """Records of one type; None for NXDOMAIN or no data; ValidationError for failures."""
        try:
            answer = await self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.resolver.NoNameservers:
            raise ValidationError("dns", f"DNS problem: SERVFAIL looking up {rdtype} for {name}") from None
        except (dns.exception.Timeout, dns.resolver.LifetimeTimeout):
            raise ValidationError("dns", f"DNS problem: query timed out looking up {rdtype} for {name}") from None
        except dns.exception.DNSException as exc:
            raise ValidationError(
                "dns", f"DNS problem: {exc.__class__.__name__} looking up {rdtype} for {name}"
            ) from None
        if answer.rrset is None:
            return None
        return list(answer.rrset)

    async def addresses(self, name: str) -> list[str]:
        """A then AAAA (IPv4 first, as most validation authorities try it first)."""
        try:
            ipaddress.ip_address(name)
            return [name]
        except ValueError:
            pass
        if under(name, self._loopback_domains):
            return ["127.0.0.1"]
        if self._server is None:
            return await self._system_addresses(name)
        found: list[str] = []
        for rdtype in ("A", "AAAA"):  # IPv6 only when there is no IPv4 address: one query in the usual case
            records = await self._query(name, rdtype)
            found += [r.address for r in records or () if hasattr(r, "address")]
            if found:
                break
        if not found:
            raise ValidationError("dns", f"DNS problem: no A or AAAA record for {name}")
        return found

    async def _system_addresses(self, name: str) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(name, None, type=socket.SOCK_STREAM), self._timeout)
        except (TimeoutError, socket.gaierror, OSError) as exc:
            raise ValidationError("dns", f"DNS problem: cannot resolve {name}: {exc}") from None
        out: list[str] = []
        for *_rest, addr in infos:
            host = str(addr[0])
            if host not in out:
                out.append(host)
        out.sort(key=lambda a: ":" in a)
        return out

    async def txt(self, name: str) -> list[str]:
        records = await self._query(name, "TXT")
        values = []
        for r in records or ():
            strings = getattr(r, "strings", ())
            values.append(b"".join(strings).decode("utf-8", "replace"))
        return values

    async def caa(self, name: str) -> list[CaaRecord] | None:
        """CAA records at exactly this name (CNAMEs followed by the resolver); None when absent."""
        if under(name, self._loopback_domains):
            return None
        records = await self._query(name, "CAA")
        if not records:
            return None
        out = []
        for r in records:
            tag = getattr(r, "tag", b"")
            value = getattr(r, "value", b"")
            out.append(
                CaaRecord(
                    int(getattr(r, "flags", 0)),
                    tag.decode("ascii", "replace") if isinstance(tag, bytes) else str(tag),
                    value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value),
                )
            )
        return out
