"""GET /crl/...: the newest published CRL of a scope, as DER."""

from __future__ import annotations

from ca.errors import CAError, ConfigError
from ca.revocation.crl import CrlService
from ca.revocation.settings import CrlSettings
from protocols.base import ProtocolContext, Route, WireRequest, WireResponse
from protocols.crl import codec
from protocols.crl.errors import CrlNotFound, not_found, render_error

# Any name, newline and empty included, reaches the handler, which says what was not found.
ROUTES = (Route("GET", "/", "get"), Route("GET", r"/{name:[\s\S]+}", "get"))


class CrlHandlers:
    def __init__(self, service: CrlService) -> None:
        self.service = service

    @classmethod
    def create(cls, ctx: ProtocolContext[CrlSettings]) -> CrlHandlers:
        """The CRL service is built once by the server and shared with its jobs."""
        if ctx.revocation.crl is None:
            raise ConfigError("crl: the server built no CRL service")
        return cls(ctx.revocation.crl)

    async def close(self) -> None:
        """Nothing of its own to release: the service belongs to the server."""

    async def get(self, req: WireRequest) -> WireResponse:
        try:
            wanted = codec.decode_path(req.path)
        except CrlNotFound as exc:
            return not_found(str(exc))
        if wanted.issuer not in self.service.ca.issuers:
            return not_found(f"no issuing CA named {wanted.issuer!r}")
        if wanted.scope not in self.service.scopes(wanted.issuer):
            return not_found(f"issuer {wanted.issuer} has no CRL partition {wanted.scope}")
        try:
            record = await self.service.fetch(wanted.issuer, wanted.scope, wanted.kind)
        except CAError as exc:
            return render_error(exc)
        if record is None or record.der is None:
            return WireResponse(
                503,
                {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "30"},
                b"this CRL has not been generated yet\n",
            )
        headers, body = codec.encode_crl(record, now=self.service.ca.clock.now(), max_age=self.service.settings.max_age)
        if req.headers.get("If-None-Match") == headers["ETag"]:
            return WireResponse(304, {k: v for k, v in headers.items() if k != "Content-Type"}, b"")
        return WireResponse(200, headers, body)
