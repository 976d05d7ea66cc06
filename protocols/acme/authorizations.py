"""Authorizations and challenges (RFC 8555 §7.5): reading, deactivating, pre-authorizing,
and answering a challenge by running the validation authority."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from protocols.acme import events
from protocols.acme.auth import NOT_LOADED, Signed
from protocols.acme.codec import (
    decode_authz_update,
    decode_challenge_response,
    decode_new_authz,
    encode_authz,
    encode_challenge,
)
from protocols.acme.context import AcmeContext, Reply
from protocols.acme.errors import AcmeProblem, malformed, not_found, unauthorized
from protocols.acme.jwk import key_authorization
from protocols.acme.orders import check_identifiers, check_profile_for, new_authz_spec
from protocols.acme.records import Account, Authz, Challenge
from protocols.acme.reuse import br_usable_until
from protocols.acme.store.authorizations import load_challenge
from protocols.acme.store.nonces import Loader
from protocols.acme.va.errors import ValidationError

log = logging.getLogger("tetra.acme.va")


class Validations:
    """Background validation tasks, kept referenced until done and cancelled on shutdown."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Challenge | None]] = set()

    def start(self, coro: Coroutine[Any, Any, Challenge | None]) -> asyncio.Task[Challenge | None]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _owned(authz: Authz | None, account: Account) -> Authz:
    if authz is None:
        raise not_found("no such authorization")
    if authz.account_id != account.id:
        raise unauthorized("this authorization belongs to another account")
    return authz


async def authz_resource(ctx: AcmeContext, signed: Signed, authz_id: int) -> Reply:
    account = signed.require_account()
    found = await ctx.authzs.get(authz_id) if signed.loaded is NOT_LOADED else signed.loaded
    authz = _owned(found, account)
    if decode_authz_update(signed.payload):
        await ctx.authzs.deactivate(authz.id)
        authz = _owned(await ctx.authzs.get(authz_id), account)
    now = ctx.clock.now()
    retry = ctx.config.retry_after if authz.current_status(now) == "pending" else None
    return Reply(200, encode_authz(authz, now, ctx.urls), location=ctx.urls.authz(authz.id), retry_after=retry)


async def new_authz(ctx: AcmeContext, signed: Signed, directory: str | None) -> Reply:
    """Pre-authorization (RFC 8555 §7.4.1), where the profile's [acme.profiles.NAME] allows it.
    It costs what an order for that name costs (ACME-25): otherwise pre-authorizations would be
    a way around the order limits."""
    account = signed.require_account()
    name = ctx.directory_profile(directory)
    if not ctx.config.profile_settings(name).pre_authorization:
        raise AcmeProblem("unauthorized", f"profile {name} does not offer pre-authorization", 403)
    profile = check_profile_for(ctx, account, name)
    ident = decode_new_authz(signed.payload)
    check_identifiers(profile, (ident,))
    now = ctx.clock.now()
    charges = ctx.limiter.new_order(account.id, (ident.base,))
    authz_id = await ctx.authzs.create(
        account.id, new_authz_spec(ident), now, now + dt.timedelta(seconds=ctx.config.authz_lifetime), charges
    )
    authz = await ctx.authzs.get(authz_id)
    assert authz is not None
    return Reply(201, encode_authz(authz, now, ctx.urls), location=ctx.urls.authz(authz_id))


def challenge_loader(ctx: AcmeContext, challenge_id: int) -> Callable[[bytes], Loader]:
    """For authenticate(load_for=...): a challenge response ('{}') starts the challenge in the
    nonce's transaction, or takes over a validation a crash left processing (ST-19); a read
    (or a malformed payload, refused later) only reads it."""
    now = ctx.clock.now()
    stale_before = now - dt.timedelta(seconds=ctx.config.challenge_stuck_after)

    def choose(payload: bytes) -> Loader:
        try:
            respond = decode_challenge_response(payload)
        except AcmeProblem:
            respond = False
        return load_challenge(challenge_id, start_at=now if respond else None, stale_before=stale_before)

    return choose


async def challenge_resource(ctx: AcmeContext, signed: Signed, challenge_id: int, validations: Validations) -> Reply:
    """Read a challenge, or answer a response: the handler authenticates with
    ``challenge_loader``, so a response was already started (or not) in the nonce's transaction."""
    account = signed.require_account()
    if signed.loaded is NOT_LOADED or signed.loaded is None:
        raise not_found("no such challenge")
    challenge, authz, started = signed.loaded
    _owned(authz, account)
    respond = decode_challenge_response(signed.payload)
    now = ctx.clock.now()
    if respond and challenge.status == "pending" and not started:
        if authz.current_status(now) != "pending":
            raise malformed(f"the authorization is {authz.current_status(now)}; it cannot be validated now")
    if respond and started:
        key_auth = key_authorization(challenge.token, signed.jwk)
        task = validations.start(validate_and_record(ctx, challenge, authz, key_auth))
        wait = ctx.config.validation.inline_wait
        if wait > 0:
            # Answer with the outcome when validation is quick; else the client polls (§7.5.1).
            done, _ = await asyncio.wait([task], timeout=wait)
            outcome = task.result() if done else None
            if outcome is not None:
                challenge = outcome
            elif done:  # the result could not be stored: show what the store holds
                refreshed = await ctx.authzs.challenge(challenge.id)
                assert refreshed is not None
                challenge, authz = refreshed
    links = (f'<{ctx.urls.authz(authz.id)}>;rel="up"',)
    retry = ctx.config.retry_after if challenge.status == "processing" else None
    return Reply(200, encode_challenge(challenge, ctx.urls), links=links, retry_after=retry)


def valid_authz_expiry(ctx: AcmeContext, validated_at: dt.datetime) -> dt.datetime:
    """A valid authorization lasts for its order and for reuse (ACME-24), but never past the
    moment the CA/B Forum BR stop accepting its validation for issuance."""
    wanted = validated_at + dt.timedelta(seconds=max(ctx.config.authz_reuse, ctx.config.order_lifetime))
    return min(wanted, br_usable_until(validated_at))


async def validate_and_record(ctx: AcmeContext, challenge: Challenge, authz: Authz, key_auth: str) -> Challenge | None:
    """Run the validation and record it; the recorded challenge, or None if it could not be
    stored or another validation of the same challenge decided it first (ST-19)."""
    ok, error = True, None
    try:
        await ctx.va.validate(
            challenge.type,
            authz.identifier,
            wildcard=authz.wildcard,
            token=challenge.token,
            key_authorization=key_auth,
            account_uri=ctx.urls.account(authz.account_id),
        )
    except ValidationError as exc:
        ok, error = False, exc.problem(403 if exc.kind in ("unauthorized", "caa") else 400)
    except Exception:  # a bug in validation must fail the challenge, never leave it processing
        log.exception("validation of challenge %d crashed", challenge.id)
        ok, error = (
            False,
            {
                "type": "urn:ietf:params:acme:error:serverInternal",
                "detail": "validation failed on the server",
                "status": 500,
            },
        )
    now = ctx.clock.now()
    try:
        recorded = await ctx.authzs.finish_challenge(
            challenge,
            authz,
            ok=ok,
            error=error,
            now=now,
            valid_until=valid_authz_expiry(ctx, now),
        )
    except Exception:
        log.exception("cannot record the result of challenge %d", challenge.id)
        return None
    if not recorded:
        return None
    if ok:
        events.authorization_valid(authz, challenge)
    else:
        events.validation_failed(authz, challenge, error)
    return replace(challenge, status="valid" if ok else "invalid", validated_at=now if ok else None, error=error)
