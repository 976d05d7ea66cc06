"""Authenticating a POST (RFC 8555 §6.2-§6.5): JWS shape, URL, key or account, signature, nonce.

The nonce is redeemed after the signature verified: a request that anyone
could forge never spends a nonce, and one that verifies spends it even if it
fails later (documented for ACME-04). For account-signed requests the
redemption and the account read share one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from ca.digits import parse_decimal
from protocols.acme.context import AcmeContext
from protocols.acme.errors import AcmeProblem, malformed
from protocols.acme.jwk import Jwk, parse_jwk
from protocols.acme.jws import JwsMessage, parse_jws, verify
from protocols.acme.records import Account
from protocols.base import WireRequest

JOSE_JSON = "application/jose+json"


NOT_LOADED: Any = object()  # Signed.loaded when authenticate() was given no loader


@dataclass(frozen=True)
class Signed:
    msg: JwsMessage
    jwk: Jwk
    account: Account | None  # None when signed with an embedded jwk
    loaded: Any = NOT_LOADED  # what authenticate(load=...) read in the nonce's transaction

    @property
    def payload(self) -> bytes:
        return self.msg.payload

    def require_account(self) -> Account:
        if self.account is None:  # pragma: no cover - guarded by authenticate(kid=...)
            raise malformed("this request must be signed by an account ('kid')")
        return self.account


def account_does_not_exist(detail: str) -> AcmeProblem:
    return AcmeProblem("accountDoesNotExist", detail, 400)


def account_id_from_kid(ctx: AcmeContext, kid: str) -> int:
    prefix = ctx.urls.base + "/acct/"
    account_id = parse_decimal(kid.removeprefix(prefix)) if kid.startswith(prefix) else None
    if account_id is None:
        raise account_does_not_exist(f"'kid' {kid[:100]!r} is not an account URL of this server")
    return account_id


async def authenticate(
    ctx: AcmeContext,
    req: WireRequest,
    *,
    jwk: str = "forbidden",
    load: Callable[[Connection, Account], Any] | None = None,
    load_for: Callable[[bytes], Callable[[Connection, Account], Any]] | None = None,
) -> Signed:
    """``jwk``: "forbidden" (kid only), "allowed" (revokeCert) or "required" (newAccount).
    ``load`` (kid-signed requests) reads the requested resource in the transaction that spends
    the nonce; its result is ``Signed.loaded`` (None if the nonce or account was refused).
    ``load_for`` picks that loader from the payload once the signature verified (a challenge
    response starts the challenge in that transaction, a read does not)."""
    content_type = req.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if content_type != JOSE_JSON:
        raise AcmeProblem("malformed", f"Content-Type must be {JOSE_JSON}", 415)
    msg = parse_jws(req.body)
    expected = ctx.urls.base + req.path
    if msg.url != expected:
        raise malformed(f"JWS 'url' {msg.url[:200]!r} does not match the request URL {expected!r}")
    if msg.jwk is not None:
        if jwk == "forbidden":
            raise malformed("this resource must be signed with 'kid' (an account URL), not 'jwk'")
        key = parse_jwk(msg.jwk)
        verify(msg, key)
        assert msg.nonce is not None
        if not await ctx.nonces.redeem(msg.nonce):
            raise bad_nonce()
        return Signed(msg, key, None)
    if jwk == "required":
        raise malformed("newAccount must be signed with 'jwk', not 'kid'")
    assert msg.kid is not None and msg.nonce is not None
    account_id = account_id_from_kid(ctx, msg.kid)
    known = ctx.cached_account(account_id) or await ctx.accounts.get(account_id)
    if known is None:
        raise account_does_not_exist("no account at this 'kid'")
    verify(msg, ctx.account_jwk(known))
    if load_for is not None:
        load = load_for(msg.payload)
    # The nonce is spent and the account re-read in one transaction; the cached copy above only
    # picked the key to verify with.
    redeemed, account, loaded = await ctx.nonce_store.redeem_for(msg.nonce, ctx.clock.now(), account_id, load)
    if load is None:
        loaded = NOT_LOADED
    if not redeemed:
        raise bad_nonce()
    if account is None:
        raise account_does_not_exist("no account at this 'kid'")
    ctx.remember_account(account)
    key = ctx.account_jwk(account)
    if account.thumbprint != known.thumbprint:
        verify(msg, key)  # the key changed meanwhile (key rollover in another process)
    if account.status != "valid":
        raise AcmeProblem("unauthorized", f"account is {account.status}", 403)
    return Signed(msg, key, account, loaded)


def bad_nonce() -> AcmeProblem:
    return AcmeProblem("badNonce", "the nonce is unknown, expired or already used; retry with the one attached")
