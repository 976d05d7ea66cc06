"""Handlers of the operator API. Errors are JSON {"error": reason, "detail": text}.

Every body is decoded by the one bounded JSON decoder and checked against its schema
(protocols/api/schema.py) before any field is read, so a handler sees only well-typed,
bounded values (OPS-12)."""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from ca.config_secrets import read_secret
from ca.csr import enrollment_from_csr, parse_csr
from ca.digits import MAX_ID_DIGITS, parse_decimal, parse_hex
from ca.enrollment import AuthMethod, EnrollmentOutcome, InventoryFields, Pending, Requester
from ca.errors import CAError, FailureReason, NotAuthorized
from ca.interface import CoreApi
from ca.tomlread import Table
from protocols import json_body
from protocols.api.schema import ENROLL_REQUEST, REVOKE_REQUEST, SchemaViolation, validate
from protocols.base import ProtocolContext, Route, WireRequest, WireResponse

ROUTES = (
    Route("POST", "/enroll", "enroll"),
    Route("GET", "/requests/{id}", "poll"),
    Route("POST", "/revoke", "revoke"),
)

_STATUS = {
    FailureReason.MALFORMED: 400,
    FailureReason.BAD_CSR: 400,
    FailureReason.BAD_ALGORITHM: 400,
    FailureReason.BAD_PUBLIC_KEY: 400,
    FailureReason.BAD_SIGNATURE: 400,
    FailureReason.BAD_TIME: 400,
    FailureReason.UNAUTHORIZED: 403,
    FailureReason.REJECTED_BY_POLICY: 403,
    FailureReason.UNKNOWN_CERTIFICATE: 404,
    FailureReason.ALREADY_REVOKED: 409,
    FailureReason.RATE_LIMITED: 429,
    FailureReason.UNAVAILABLE: 503,
    FailureReason.INTERNAL: 500,
}


@dataclass(frozen=True)
class ApiConfig:
    token_env: str
    token_file: str
    # A bearer token sent in clear can be read on the way: plain HTTP is accepted from loopback
    # only, unless the operator says a TLS-terminating proxy sits in front.
    allow_plain_http: bool = False


def parse_config(table: Table) -> ApiConfig:
    token_file = table.get("token_file", str, "")
    if token_file and not Path(token_file).is_absolute():
        token_file = str(Path(table.source).parent / token_file)
    cfg = ApiConfig(
        table.get("token_env", str, "TETRA_API_TOKEN"), token_file, table.get("allow_plain_http", bool, False)
    )
    table.finish()
    return cfg


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> WireResponse:
    return WireResponse(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode())


class NotAuthenticated(NotAuthorized):
    """No bearer token, or the wrong one: 401 with a Bearer challenge (RFC 6750 §3), where an
    operator who is known but whom a profile refuses gets 403."""


def render_error(exc: CAError) -> WireResponse:
    headers = {"Retry-After": "30"} if exc.reason in (FailureReason.UNAVAILABLE, FailureReason.RATE_LIMITED) else {}
    body = {"error": exc.reason.value, "detail": exc.public_detail()}
    if isinstance(exc, NotAuthenticated):
        return _json(401, body, {"WWW-Authenticate": 'Bearer realm="tetra-api"'})
    return _json(_STATUS[exc.reason], body, headers)


_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 413: "too_large", 500: FailureReason.INTERNAL.value}


def http_error(status: int, reason: str) -> WireResponse:
    """What the server answers under /api/v1 when no handler does (no such path or method, a body
    over max_body) or when a handler failed unexpectedly (500): the same JSON as every refusal."""
    return _json(status, {"error": _HTTP_ERRORS.get(status, "error"), "detail": reason.lower()})


class ApiHandlers:
    def __init__(self, core: CoreApi, token: bytes | None, *, allow_plain_http: bool = False) -> None:
        self.core = core
        self._token = token
        self._allow_plain_http = allow_plain_http

    @classmethod
    def create(cls, ctx: ProtocolContext[ApiConfig]) -> ApiHandlers:
        cfg = ctx.config
        token: bytes | None = None  # no token configured: every call is refused
        if cfg.token_env and cfg.token_env in os.environ:
            token = read_secret(cfg.token_env, "", "api token")
        elif cfg.token_file:
            token = read_secret("", cfg.token_file, "api token")
        return cls(ctx.core, token, allow_plain_http=cfg.allow_plain_http)

    async def close(self) -> None:
        """Nothing to release."""

    def _operator(self, req: WireRequest) -> str:
        if req.scheme != "https" and not self._allow_plain_http and not _loopback(req.remote):
            raise CAError(
                "the API takes bearer tokens over HTTPS only (or set [api] allow_plain_http behind a TLS proxy)",
                FailureReason.UNAUTHORIZED,
            )
        auth = req.headers.get("Authorization", "")
        given = auth.removeprefix("Bearer ").encode()
        if self._token is None or not auth.startswith("Bearer ") or not hmac.compare_digest(given, self._token):
            raise NotAuthenticated("missing or wrong bearer token")
        return f"api:{req.remote}"

    @staticmethod
    def _body(req: WireRequest, schema: dict[str, Any]) -> dict[str, Any]:
        """The body, decoded within the JSON limits and valid under ``schema``; else 400."""
        try:
            return validate(json_body.decode(req.body), schema)
        except json_body.JsonRefused as exc:
            raise CAError(f"body {exc}", FailureReason.MALFORMED) from None
        except SchemaViolation as exc:
            raise CAError(str(exc), FailureReason.MALFORMED) from None

    async def enroll(self, req: WireRequest) -> WireResponse:
        try:
            operator = self._operator(req)
            body = self._body(req, ENROLL_REQUEST)
            request = enrollment_from_csr(
                parse_csr(body["csr"].encode()),
                protocol="api",
                profile_name=body["profile"],
                requester=Requester(operator, AuthMethod.OPERATOR),
                inventory=InventoryFields(**body.get("inventory", {})),  # the schema admits only its fields
            )
            outcome = await self.core.enroll(await self.core.decide(request))
        except CAError as exc:
            return render_error(exc)
        return _outcome(outcome, issued_status=201)

    async def poll(self, req: WireRequest) -> WireResponse:
        try:
            self._operator(req)
            request_id = parse_decimal(req.match["id"])
            if request_id is None:
                raise CAError(f"request id must be 1 to {MAX_ID_DIGITS} digits 0-9", FailureReason.MALFORMED)
            outcome = await self.core.poll(request_id)
        except CAError as exc:
            return render_error(exc)
        return _outcome(outcome, issued_status=200)

    async def revoke(self, req: WireRequest) -> WireResponse:
        try:
            operator = self._operator(req)
            body = self._body(req, REVOKE_REQUEST)
            serial = parse_hex(body["serial"].replace(":", ""), 40)
            if serial is None:
                raise CAError("serial must be at most 20 octets in hexadecimal", FailureReason.MALFORMED)
            record = await self.core.find_by_serial(serial, body.get("issuer"))
            reason = body.get("reason", "unspecified")
            revoked = await self.core.revoke(record.issuer, serial, reason, requester=operator)
        except CAError as exc:
            return render_error(exc)
        return _json(200, {"serial": revoked.serial_hex, "status": revoked.status, "reason": revoked.revocation_reason})


def _loopback(remote: str) -> bool:
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


def _outcome(outcome: EnrollmentOutcome, *, issued_status: int) -> WireResponse:
    """An enrollment as enroll and poll answer it: the certificate with its chain, or 202 with the
    request to poll and when (a profile that needs an operator's approval)."""
    if isinstance(outcome, Pending):
        return _json(202, {"request_id": outcome.request_id}, {"Retry-After": str(outcome.retry_after)})
    return _json(
        issued_status,
        {
            "serial": format(outcome.certificate.serial_number, "x"),
            "issuer": outcome.issuer,
            "certificate": outcome.certificate.public_bytes(Encoding.PEM).decode(),
            "chain": "".join(c.public_bytes(Encoding.PEM).decode() for c in outcome.chain),
        },
    )
