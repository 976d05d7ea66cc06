"""OCSP over HTTP (RFC 6960 Appendix A): POST at /ocsp, GET at /ocsp/<base64>."""

from __future__ import annotations

from ca.errors import CAError
from ca.revocation.model import OcspAnswer, StatusQuery
from ca.revocation.ocsp import OcspService
from protocols.base import RevocationHandlers, Route, WireRequest, WireResponse
from protocols.ocsp import codec
from protocols.ocsp.errors import OcspError, render_error

ROUTES = (
    Route("POST", "", "post"),  # the URL certificates carry: http://host/ocsp
    Route("POST", "/", "post"),
    Route("GET", "", "get"),
    Route("GET", "/", "get"),
    Route("GET", r"/{request:[\s\S]+}", "get"),  # base64 may hold "/", "+", "=", escapes, any byte
)


DECODED_MEMORY = 100_000  # distinct nonce-less requests remembered decoded


class OcspHandlers(RevocationHandlers[OcspService]):
    service_name = "ocsp"

    def __init__(self, service: OcspService) -> None:
        super().__init__(service)
        self.settings = service.settings
        self._decoded: dict[bytes, StatusQuery] = {}
        self._paths: dict[str, StatusQuery] = {}

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

    def _decode_path(self, path: str) -> StatusQuery:
        """A GET path, decoded; nonce-less ones remembered like `_decode` (stapling servers
        repeat the same URL)."""
        query = self._paths.get(path)
        if query is None:
            query = self._decode(codec.decode_get_path(path, max_bytes=self.settings.max_request_bytes))
            if query.nonce is None:
                if len(self._paths) >= DECODED_MEMORY:
                    self._paths.clear()
                self._paths[path] = query
        return query

    async def post(self, req: WireRequest) -> WireResponse:
        return await self.answer(req.body, get=False, if_none_match=None)

    async def get(self, req: WireRequest) -> WireResponse:
        return await self.answer(req.path, get=True, if_none_match=req.headers.get("If-None-Match"))

    async def answer(self, request: bytes | str, *, get: bool, if_none_match: str | None) -> WireResponse:
        """The answer to a POST body or a GET path (below /ocsp, percent-decoded once)."""
        now = self.answer_now(request, get=get, if_none_match=if_none_match)
        if isinstance(now, WireResponse):
            return now
        return await self.answer_later(now, get=get, if_none_match=if_none_match)

    def answer_now(self, request: bytes | str, *, get: bool, if_none_match: str | None) -> WireResponse | StatusQuery:
        """The answer if it needs no I/O (a refusal or a cached pre-signed response), else the
        decoded query for `answer_later`. Both listeners go through here, so they answer alike."""
        try:
            query = self._decode_path(request) if isinstance(request, str) else self._decode(request)
        except OcspError as exc:
            return render_error(exc)
        answer = self.service.answer_now(query)
        if answer is None:
            return query
        return self._render(answer, get=get, if_none_match=if_none_match)

    async def answer_later(self, query: StatusQuery, *, get: bool, if_none_match: str | None) -> WireResponse:
        """Look up the store or sign fresh (nonces, several CertIDs, cache misses)."""
        try:
            answer = await self.service.respond(query)
        except (OcspError, CAError) as exc:
            return render_error(exc)
        return self._render(answer, get=get, if_none_match=if_none_match)

    def _render(self, answer: OcspAnswer, *, get: bool, if_none_match: str | None) -> WireResponse:
        status, headers, body = codec.encode_answer(answer, get=get, now=self.service.clock.now())
        if get and answer.cacheable and if_none_match == answer.etag:
            return WireResponse.not_modified(headers)
        return WireResponse(status, headers, body)
