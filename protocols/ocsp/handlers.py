"""OCSP over HTTP (RFC 6960 Appendix A): POST at /ocsp, GET at /ocsp/<base64>."""

from __future__ import annotations

from ca.errors import CAError
from ca.revocation.model import StatusQuery
from ca.revocation.ocsp import OcspService
from ca.revocation.settings import OcspSettings
from protocols.base import ProtocolContext, Route, WireRequest, WireResponse
from protocols.ocsp import codec
from protocols.ocsp.errors import OcspError, render_error

ROUTES = (
    Route("POST", "", "post"),  # the URL certificates carry: http://host/ocsp
    Route("POST", "/", "post"),
    Route("GET", "", "get"),
    Route("GET", "/", "get"),
    Route("GET", "/{request:.+}", "get"),  # base64 may hold '/', '+', '=' and percent-escapes
)


DECODED_MEMORY = 100_000  # distinct nonce-less requests remembered decoded


class OcspHandlers:
    def __init__(self, service: OcspService) -> None:
        self.service = service
        self.settings = service.settings
        self._decoded: dict[bytes, StatusQuery] = {}

    def _decode(self, der: bytes) -> StatusQuery:
        """Decoding is a pure function of the bytes, and stapling servers and browsers ask the
        same nonce-less question again and again: remember the answer to the parse."""
        query = self._decoded.get(der)
        if query is None:
            query = codec.decode_request(
                der, max_bytes=self.settings.max_request_bytes, max_certs=self.settings.max_certs
            )
            if query.nonce is None:
                if len(self._decoded) >= DECODED_MEMORY:
                    self._decoded.clear()
                self._decoded[der] = query
        return query

    @classmethod
    def create(cls, ctx: ProtocolContext, settings: OcspSettings) -> OcspHandlers:
        return cls(OcspService(ctx.ca, settings))

    async def post(self, req: WireRequest) -> WireResponse:
        return await self._answer(req.body, get=False, req=req)

    async def get(self, req: WireRequest) -> WireResponse:
        try:
            der = codec.decode_get_path(req.path, max_bytes=self.settings.max_request_bytes)
        except OcspError as exc:
            return render_error(exc)
        return await self._answer(der, get=True, req=req)

    async def _answer(self, der: bytes, *, get: bool, req: WireRequest) -> WireResponse:
        try:
            answer = await self.service.respond(self._decode(der))
        except (OcspError, CAError) as exc:
            return render_error(exc)
        status, headers, body = codec.encode_answer(answer, get=get, now=self.service.clock.now())
        if get and answer.cacheable and req.headers.get("If-None-Match") == answer.etag:
            return WireResponse(304, {k: v for k, v in headers.items() if k != "Content-Type"}, b"")
        return WireResponse(status, headers, body)

    async def close(self) -> None:
        await self.service.close()
