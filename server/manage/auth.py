"""Who is calling: a bearer token, checked by the token store, and what the caller may do.

A token that fails for any reason (unknown, expired, revoked, forged, its user disabled) is
answered the same way, 401 "invalid token" with a Bearer challenge (RFC 6750 §3): a client
learns nothing about which tokens exist. The reason goes to the log, one line per refusal
(OPS-05), for the operator who must find out why an automation stopped.

A token crossing the network in clear can be read on the way: plain HTTP is accepted from
loopback only, unless [manage] allow_plain_http says a TLS-terminating proxy fronts it. That
refusal comes before the token is even looked at.
"""

from __future__ import annotations

import ipaddress
import logging

from ca.operators.errors import TokenRefused
from ca.operators.principal import Principal
from ca.service import CertificateAuthority
from server.manage.problems import Problem

log = logging.getLogger("tetra.manage")

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tetra-api"'}


def check_transport(scheme: str, remote: str, allow_plain_http: bool) -> None:
    if scheme != "https" and not allow_plain_http and not _loopback(remote):
        raise Problem(
            "transport",
            "the API takes bearer tokens over HTTPS only (or set [manage] allow_plain_http behind a TLS proxy)",
        )


async def authenticate(ca: CertificateAuthority, authorization: str, remote: str) -> Principal:
    """The principal behind the Authorization header, or 401."""
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        log.info("API call from %s refused: no bearer token", remote or "?")
        raise Problem("unauthenticated", "a bearer token is required", CHALLENGE)
    try:
        return await ca.operators.tokens.authenticate(secret.strip())
    except TokenRefused as exc:
        log.info("API call from %s refused: %s", remote or "?", exc.reason)
        raise Problem("unauthenticated", "invalid token", {**CHALLENGE, **_error_attribute()}) from None


def _error_attribute() -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="tetra-api", error="invalid_token"'}


def _loopback(remote: str) -> bool:
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
