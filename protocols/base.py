"""What a protocol gives the server: routes over plain request/response values (no aiohttp here).

A protocol is one folder under protocols/ whose __init__ exports
``SPEC = ProtocolSpec(...)``, plus one line in protocols/registry.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ca.service import CertificateAuthority
from ca.tomlread import Table


@dataclass(frozen=True)
class WireRequest:
    method: str
    path: str  # path below the protocol's mount prefix, e.g. "/directory"
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive view
    body: bytes
    match: Mapping[str, str] = field(default_factory=dict)  # path parameters
    peer_certificate_der: bytes | None = None  # TLS client certificate, if any
    tls_unique: bytes | None = None
    remote: str = ""
    scheme: str = "http"
    host: str = ""


@dataclass(frozen=True)
class WireResponse:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @classmethod
    def text(cls, status: int, message: str) -> WireResponse:
        return cls(status, {"Content-Type": "text/plain; charset=utf-8"}, message.encode())


class ProtocolContext(Protocol):
    """What the server hands each protocol at start-up."""

    ca: CertificateAuthority
    http_url: str  # base URL of the plain-HTTP listener
    https_url: str  # base URL of the HTTPS listener


Handler = Callable[[WireRequest], Awaitable[WireResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # aiohttp-style pattern below the prefix: "/order/{id}"
    handler_name: str  # attribute of the protocol's handler object


@dataclass(frozen=True)
class ProtocolSpec:
    name: str  # also its config section: [acme], [ocsp]...
    prefix: str  # "/acme", "/.well-known/est"
    routes: tuple[Route, ...]
    # Builds the handler object (whose methods the routes name) from context + parsed config.
    factory: Callable[[ProtocolContext, Any], Any]
    # Reads and validates the protocol's config section; must call table.finish().
    parse_config: Callable[[Table], Any] = lambda table: table.finish()
    listeners: tuple[str, ...] = ("http", "https")  # which listeners serve it
    max_body: int = 64 * 1024
    # How the protocol words an error the server answers before any handler runs (no such path
    # or method under its prefix, a body over max_body): (HTTP status, reason) -> response.
    # None: the server's plain-text answer.
    http_error: Callable[[int, str], WireResponse] | None = None
