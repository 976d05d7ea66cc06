"""Challenge types per identifier and the validation authority that checks them.

Nothing here skips validation: tests point the ports and the resolver at
loopback servers of their own, exactly as they would point at the Internet. The demo's
``demo_loopback_domains`` changes only where a name resolves to; the client's answer is still
fetched and checked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets

from ca.enrollment import Identifier
from protocols.acme.chaos import delay_validation
from protocols.acme.config import ChaosConfig, ValidationConfig
from protocols.acme.va.caa import check_caa
from protocols.acme.va.errors import ValidationError
from protocols.acme.va.http01 import validate_http01
from protocols.acme.va.resolve import Resolver
from protocols.acme.va.tlsalpn01 import validate_tls_alpn01

log = logging.getLogger(__name__)

HTTP01, DNS01, TLSALPN01 = "http-01", "dns-01", "tls-alpn-01"
TOKEN_BYTES = 32  # RFC 8555 §8.1: at least 128 bits of entropy


def challenge_types(ident: Identifier, wildcard: bool) -> tuple[str, ...]:
    """RFC 8555 §7.1.4: wildcards only by dns-01; RFC 8738 §7: IP addresses never by dns-01."""
    if wildcard:
        return (DNS01,)
    if ident.type == "ip":
        return (HTTP01, TLSALPN01)
    return (HTTP01, DNS01, TLSALPN01)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def dns01_value(key_authorization: str) -> str:
    """RFC 8555 §8.4: base64url(SHA-256(key authorization))."""
    digest = hashlib.sha256(key_authorization.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class ValidationAuthority:
    def __init__(
        self, config: ValidationConfig, caa_identities: tuple[str, ...], chaos: ChaosConfig = ChaosConfig()
    ) -> None:
        self.config = config
        self.chaos = chaos
        self.caa_identities = caa_identities
        self.resolver = Resolver(config.resolver, config.timeout, config.demo_loopback_domains)
        if config.demo_loopback_domains:
            log.warning(
                "DEMO SETTING: ACME validation resolves every name under %s to 127.0.0.1 "
                "([acme.validation] demo_loopback_domains); never use this outside a demo",
                ", ".join(config.demo_loopback_domains),
            )
        self._slots = asyncio.Semaphore(config.max_concurrent)

    async def validate(
        self, kind: str, ident: Identifier, *, wildcard: bool, token: str, key_authorization: str, account_uri: str
    ) -> None:
        """Raise ValidationError unless the challenge is met (and CAA allows us, when checked)."""
        cfg = self.config
        await delay_validation(self.chaos)  # chaos mode only (ACME-27)
        async with self._slots:
            try:
                await asyncio.wait_for(self._check(kind, ident, wildcard, token, key_authorization), 3 * cfg.timeout)
            except TimeoutError:
                raise ValidationError("connection", f"{kind} validation of {ident.value} timed out") from None
            if cfg.caa and ident.type == "dns":
                await self.check_caa(ident.value, wildcard=wildcard, account_uri=account_uri, method=kind)

    async def _check(self, kind: str, ident: Identifier, wildcard: bool, token: str, key_auth: str) -> None:
        cfg = self.config
        if kind == HTTP01:
            await validate_http01(
                self.resolver,
                ident.value,
                token,
                key_auth,
                http_port=cfg.http_port,
                tls_port=cfg.tls_port,
                timeout=cfg.timeout,
                max_redirects=cfg.max_redirects,
            )
        elif kind == DNS01:
            name = f"_acme-challenge.{ident.value}"
            expected = dns01_value(key_auth)
            values = await self.resolver.txt(name)
            if expected not in values:
                shown = ", ".join(repr(v[:64]) for v in values[:3]) or "no TXT records"
                raise ValidationError("unauthorized", f"incorrect TXT record at {name}: found {shown}")
        elif kind == TLSALPN01:
            await validate_tls_alpn01(
                self.resolver, ident.type, ident.value, key_auth, port=cfg.tls_port, timeout=cfg.timeout
            )
        else:  # pragma: no cover - only offered types are stored
            raise ValidationError("malformed", f"unknown challenge type {kind}")

    async def check_caa(self, name: str, *, wildcard: bool, account_uri: str, method: str) -> None:
        await check_caa(
            self.resolver,
            name,
            wildcard=wildcard,
            identities=self.caa_identities,
            account_uri=account_uri,
            method=method,
        )
