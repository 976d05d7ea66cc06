"""Every refusal of the management API as an RFC 9457 problem document.

`{"type": "urn:tetra:problem:<code>", "title", "status", "detail"}` with Content-Type
`application/problem+json`: for a handler's refusal (`Problem`), a core error (`CAError`,
mapped by its reason), and what aiohttp refuses before any handler runs (no such path,
method, a body over max_body). A client tells refusals apart by `type`, not by parsing `detail`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ca.errors import CAError, FailureReason
from server.manage.actions.errors import Conflict, FourEyesRefused

MEDIA_TYPE = "application/problem+json"

# code -> (status, title): every problem type the API answers; the OpenAPI document lists them.
TYPES: dict[str, tuple[int, str]] = {
    "malformed": (400, "Malformed request"),
    "invalid-body": (400, "Request body breaks its schema"),
    "invalid-query": (400, "Query parameter breaks its schema"),
    "bad-csr": (400, "Unusable certificate request"),
    "unauthenticated": (401, "Authentication required"),
    "forbidden": (403, "Not permitted"),
    "transport": (403, "Token sent over plain HTTP"),
    "policy": (403, "Refused by policy"),
    "four-eyes": (403, "The requester may not approve its own request"),
    "not-found": (404, "No such resource"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "Conflicts with the current state"),
    "too-large": (413, "Request body too large"),
    "rate-limited": (429, "Too many requests"),
    "internal": (500, "Internal error"),
    "unavailable": (503, "Temporarily unavailable"),
}

_REASONS: dict[FailureReason, str] = {
    FailureReason.MALFORMED: "malformed",
    FailureReason.BAD_CSR: "bad-csr",
    FailureReason.BAD_ALGORITHM: "bad-csr",
    FailureReason.BAD_PUBLIC_KEY: "bad-csr",
    FailureReason.BAD_SIGNATURE: "bad-csr",
    FailureReason.BAD_TIME: "malformed",
    FailureReason.UNAUTHORIZED: "forbidden",
    FailureReason.REJECTED_BY_POLICY: "policy",
    FailureReason.UNKNOWN_CERTIFICATE: "not-found",
    FailureReason.ALREADY_REVOKED: "conflict",
    FailureReason.RATE_LIMITED: "rate-limited",
    FailureReason.UNAVAILABLE: "unavailable",
    FailureReason.INTERNAL: "internal",
}

# The actions' refusals that a failure reason alone does not tell apart.
_KINDS: tuple[tuple[type[CAError], str], ...] = ((FourEyesRefused, "four-eyes"), (Conflict, "conflict"))

_HTTP_STATUS = {404: "not-found", 405: "method-not-allowed", 413: "too-large"}


class Problem(Exception):
    """A refusal a handler or the router raises; rendered by `render`."""

    def __init__(self, code: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        assert code in TYPES, code
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return TYPES[self.code][0]

    @classmethod
    def from_ca_error(cls, exc: CAError) -> Problem:
        retry = exc.reason in (FailureReason.UNAVAILABLE, FailureReason.RATE_LIMITED)
        code = next((code for kind, code in _KINDS if isinstance(exc, kind)), _REASONS[exc.reason])
        return cls(code, exc.public_detail(), {"Retry-After": "30"} if retry else None)

    @classmethod
    def from_http_status(cls, status: int, reason: str) -> Problem:
        """aiohttp's own refusals under /api/v1 (no route, no such method, body over max_body)."""
        return cls(_HTTP_STATUS.get(status, "malformed" if status < 500 else "internal"), reason.lower())

    def document(self) -> dict[str, Any]:
        status, title = TYPES[self.code]
        return {"type": f"urn:tetra:problem:{self.code}", "title": title, "status": status, "detail": self.detail}

    def body(self) -> bytes:
        return json.dumps(self.document()).encode()


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "enum": [f"urn:tetra:problem:{code}" for code in TYPES]},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}
