"""GET /crl/...: the newest published CRL of a scope, as DER."""

from __future__ import annotations

from ca.authorities.model import Kind
from ca.errors import CAError
from ca.revocation.crl import CrlService
from protocols.base import RevocationHandlers, Route, WireRequest, WireResponse
from protocols.crl import codec
from protocols.crl.errors import CrlNotFound, not_found, render_error

# Any name, newline and empty included, reaches the handler, which says what was not found.
ROUTES = (Route("GET", "/", "get"), Route("GET", r"/{name:[\s\S]+}", "get"))


class CrlHandlers(RevocationHandlers[CrlService]):
    service_name = "crl"

    async def get(self, req: WireRequest) -> WireResponse:
        try:
            wanted = codec.decode_path(req.path)
        except CrlNotFound as exc:
            return not_found(str(exc))
        if wanted.issuer not in self.service.ca.issuers and not self._is_root(wanted.issuer):
            return not_found(f"no issuing CA named {wanted.issuer!r}")
        if wanted.scope not in self.service.scopes(wanted.issuer):
            return not_found(f"issuer {wanted.issuer} has no CRL partition {wanted.scope}")
        try:
            record = await self.service.fetch(wanted.issuer, wanted.scope, wanted.kind)
        except CAError as exc:
            return render_error(exc)
        if record is None or record.der is None:
            if self._is_root(wanted.issuer):  # signed only where its key is: no use waiting
                return not_found(f"root {wanted.issuer} has no {wanted.kind} CRL published")
            return WireResponse(
                503,
                {"Content-Type": "text/plain; charset=utf-8", "Retry-After": "30"},
                b"this CRL has not been generated yet\n",
            )
        headers, body = codec.encode_crl(record, now=self.service.ca.clock.now(), max_age=self.service.settings.max_age)
        if req.headers.get("If-None-Match") == headers["ETag"]:
            return WireResponse.not_modified(headers)
        return WireResponse(200, headers, body)

    def _is_root(self, name: str) -> bool:
        """A root's ARL, signed ahead of time from the CLI (ca/authorities/root_publication.py),
        is served from the store like any CRL; only its complete, unpartitioned scope exists."""
        authority = self.service.ca.authorities.get(name)
        return authority is not None and authority.kind is Kind.ROOT
