"""Why a validation failed, as an ACME problem type (RFC 8555 §6.7) and a precise detail."""

from __future__ import annotations

from typing import Any


class ValidationError(Exception):
    """``kind`` is the ACME error type: connection, dns, tls, incorrectResponse, unauthorized, caa."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail

    def problem(self, status: int = 400) -> dict[str, Any]:
        return {"type": f"urn:ietf:params:acme:error:{self.kind}", "detail": self.detail, "status": status}
