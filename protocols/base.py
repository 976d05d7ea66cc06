"""What a protocol gives the server, and what the server gives a protocol (no aiohttp here).

A protocol is one folder under protocols/ whose __init__ exports ``SPEC = ProtocolSpec(...)``,
plus one line in protocols/registry.py. The server reads the protocol's config section with
``spec.parse_config``, builds a `ProtocolContext` (the narrow core interface, the parsed
config, URLs, the path-label map, the revocation services) and hands it to ``spec.factory``,
which returns the handler object whose methods the routes name. The same context serves the
protocol's background jobs and its `tetra <protocol> ...` commands. docs/architecture.md
("Adding a protocol") walks through it.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, Self, TypeVar

from ca.errors import ConfigError
from ca.interface import CoreApi
from ca.tomlread import Table
from protocols.labels import ProfileLabels

if TYPE_CHECKING:
    from ca.revocation.crl import CrlService
    from ca.revocation.ocsp import OcspService

C = TypeVar("C")
S = TypeVar("S")


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

    @classmethod
    def not_modified(cls, headers: Mapping[str, str]) -> WireResponse:
        """304 to a conditional GET whose ETag still matches: the headers the 200 would carry
        (ETag, caching), without a body and so without its Content-Type (RFC 9110 §15.4.5)."""
        return cls(304, {k: v for k, v in headers.items() if k != "Content-Type"}, b"")


@dataclass(frozen=True)
class RevocationServices:
    """The OCSP responder and CRL generator, built once by the server (server/wiring.py) and
    shared by the protocols that answer from them and the jobs that keep them fresh."""

    ocsp: OcspService | None = None
    crl: CrlService | None = None


@dataclass(frozen=True)
class ProtocolContext(Generic[C]):
    """What the server hands a protocol: for its handlers, its jobs and its CLI commands alike."""

    name: str  # the protocol's name (its config section)
    core: CoreApi
    config: C  # the protocol's parsed config section (what spec.parse_config returned)
    labels: ProfileLabels  # path label -> profile (EST labels, SCEP and CMP profile paths)
    default_profile: str  # the server's [profiles] default
    config_dir: Path  # relative paths in the protocol's section are taken from here
    http_url: str = ""  # base URL of the plain-HTTP listener
    https_url: str = ""  # base URL of the HTTPS listener
    revocation: RevocationServices = field(default_factory=RevocationServices)


class ProtocolHandlers(Protocol):
    """The object a factory returns: route methods by name, and a close() for shutdown."""

    async def close(self) -> None: ...


class RevocationHandlers(Generic[S]):
    """Handlers that answer from one of the server's `RevocationServices` (``service_name``: "ocsp"
    or "crl"). The service is built once by the server and shared with its jobs, so the handlers
    own nothing: close() releases nothing, and a server that built no such service is a
    configuration error at start, not a failure on the first request."""

    service_name: str

    def __init__(self, service: S) -> None:
        self.service = service

    @classmethod
    def create(cls, ctx: ProtocolContext[Any]) -> Self:
        service = getattr(ctx.revocation, cls.service_name)
        if service is None:
            raise ConfigError(f"{cls.service_name}: the server built no {cls.service_name.upper()} service")
        return cls(service)

    async def close(self) -> None:
        """Nothing of its own to release: the service belongs to the server."""

    @classmethod
    def spec(
        cls,
        routes: tuple[Route, ...],
        parse_config: Callable[[Table], Any],
        *,
        max_body: int,
        http_error: Callable[[int, str], WireResponse] | None = None,
    ) -> ProtocolSpec:
        """The protocol these handlers serve, named after its service: mounted at /<service_name> on
        both listeners (certificates carry plain-HTTP URLs for it), carrying no enrollments."""
        name = cls.service_name
        return ProtocolSpec(
            name, f"/{name}", routes, cls.create, parse_config, max_body=max_body, enrolls=False, http_error=http_error
        )


Handler = Callable[[WireRequest], Awaitable[WireResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # aiohttp-style pattern below the prefix: "/order/{id}"
    handler_name: str  # attribute of the protocol's handler object


@dataclass(frozen=True)
class BackgroundJob:
    """Work a protocol needs done every ``interval`` seconds in every server process (ACME: settle
    orders a crash left in processing). The server runs it; a failure is logged and retried."""

    name: str
    interval: float
    run: Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class CliCommand:
    """One `tetra <protocol> <words...>` command. ``run`` gets the same context the server
    would build and the parsed arguments; it prints its result and returns the exit code.
    ``arguments`` adds the command's own options; every command also gets ``--config`` and
    ``--operator`` (``args.operator``: who acts, for the audit log) from server/cli. A CAError
    or ConfigError it raises (an unknown profile, a malformed serial) becomes one line on
    stderr and a non-zero exit, never a traceback."""

    words: tuple[str, ...]  # below `tetra <protocol>`, e.g. ("eab", "create")
    help: str
    run: Callable[[ProtocolContext[Any], argparse.Namespace], Awaitable[int]]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


@dataclass(frozen=True)
class ProtocolSpec:
    name: str  # also its config section: [acme], [ocsp]...
    prefix: str  # "/acme", "/.well-known/est"
    routes: tuple[Route, ...]
    # Builds the handler object (whose methods the routes name) from the context.
    factory: Callable[[ProtocolContext[Any]], ProtocolHandlers]
    # Reads and validates the protocol's config section; must call table.finish().
    parse_config: Callable[[Table], Any] = lambda table: table.finish()
    listeners: tuple[str, ...] = ("http", "https")  # which listeners serve it
    max_body: int = 64 * 1024
    # How the protocol words an error the server answers for it: before any handler runs (404 no
    # such path, 405 no such method under its prefix, 413 a body over max_body) and when a
    # handler failed unexpectedly (500, server/failures.py): (HTTP status, reason) -> response.
    # None: the server's plain-text answer.
    http_error: Callable[[int, str], WireResponse] | None = None
    # Counts a request whose handler failed unexpectedly against the request's source, for a
    # protocol that brakes sources whose requests keep being refused (ACME: refusals_per_minute,
    # LOAD-05): (handlers, request) -> None. A bug a client can reach is no free flood.
    count_refusal: Callable[[Any, WireRequest], None] = lambda handlers, request: None
    enrolls: bool = True  # carries enrollments: its name is in ca.enrollment.PROTOCOLS
    # The path labels the parsed config maps to profiles ({label: profile}); a label not
    # listed selects the profile of that name (ProfileLabels).
    path_labels: Callable[[Any], Mapping[str, str]] = lambda config: {}
    # PEM files of external CAs whose certificates the HTTPS listener accepts as client
    # certificates for this protocol (EST: device makers' CAs for IDevID bootstrap), besides the
    # CA's own hierarchy: (parsed config) -> paths. The protocol still decides what each proves.
    tls_client_anchors: Callable[[Any], Sequence[str]] = lambda config: ()
    jobs: Callable[[Any], Sequence[BackgroundJob]] = lambda handlers: ()  # handlers -> its jobs
    cli: tuple[CliCommand, ...] = ()
    cli_help: str = ""  # what `tetra --help` says of `tetra <protocol>`
    # Further mount prefixes serving the same routes, for clients that hard-code a path (SCEP:
    # "/cgi-bin/pkiclient.exe", "/certsrv/mscep/mscep.dll"). A handler sees the path below
    # whichever prefix the request came in on.
    aliases: tuple[str, ...] = ()

    @property
    def mounts(self) -> tuple[str, ...]:
        """The prefix, then each alias: every place the server mounts these routes."""
        return (self.prefix, *self.aliases)
