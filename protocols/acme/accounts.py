"""Accounts (RFC 8555 §7.3): registration with optional external account binding,
update, deactivation and key rollover."""

from __future__ import annotations

import json

from protocols.acme import events
from protocols.acme.auth import Signed, account_does_not_exist
from protocols.acme.codec import decode_account_update, decode_key_change_inner, decode_new_account, encode_account
from protocols.acme.context import AcmeContext, Reply
from protocols.acme.errors import AcmeProblem, malformed, unauthorized
from protocols.acme.jwk import parse_jwk
from protocols.acme.jws import loads_json, parse_eab, parse_jws, verify, verify_mac
from protocols.acme.messages import NewAccount
from protocols.acme.records import Account

EAB_PROTOCOL = "acme"


async def new_account(ctx: AcmeContext, signed: Signed, directory: str | None, url: str, remote: str) -> Reply:
    request = decode_new_account(signed.payload)
    existing = await ctx.accounts.by_thumbprint(signed.jwk.thumbprint)
    if existing is not None:
        if existing.status != "valid":
            raise unauthorized(f"the account for this key is {existing.status}")
        # RFC 8555 §7.3.1: the existing account, 200 and its URL.
        return Reply(200, encode_account(existing, ctx.urls), location=ctx.urls.account(existing.id))
    if request.only_return_existing:
        raise account_does_not_exist("no account exists for this key")
    if ctx.config.terms_of_service and not request.terms_agreed:
        raise AcmeProblem(
            "userActionRequired",
            "you must agree to the terms of service (termsOfServiceAgreed)",
            403,
            headers={"Link": f'<{ctx.config.terms_of_service}>;rel="terms-of-service"'},
        )
    profile = ctx.directory_profile(directory)
    eab_key, eab_profile = await _external_binding(ctx, signed, request, profile, url)
    account, created = await ctx.accounts.create(
        {
            "thumbprint": signed.jwk.thumbprint,
            "jwk": signed.jwk.canonical,
            "status": "valid",
            "contact": json.dumps(list(request.contact)),
            "tos_agreed": request.terms_agreed,
            "eab_key_id": eab_key,
            "eab_profile": eab_profile,
            "created_at": ctx.clock.now(),
            "remote": remote[:64],
        },
        ctx.limiter.new_account(remote),
    )
    if created:
        events.account_created(account, remote)
    return Reply(201 if created else 200, encode_account(account, ctx.urls), location=ctx.urls.account(account.id))


async def _external_binding(
    ctx: AcmeContext, signed: Signed, request: NewAccount, profile: str, url: str
) -> tuple[str | None, str | None]:
    """RFC 8555 §7.3.4: verify the MAC over the account key and bind the EAB key to it, once."""
    binding = request.external_account_binding
    if binding is None:
        if ctx.config.eab_required(profile):
            raise AcmeProblem(
                "externalAccountRequired",
                "this directory requires an external account binding (externalAccountBinding)",
            )
        return None, None
    eab = parse_eab(binding)
    if eab.url != url:
        raise malformed("externalAccountBinding 'url' must equal the newAccount URL")
    try:
        bound_key = parse_jwk(loads_json(eab.payload, "externalAccountBinding payload"))
    except ValueError:
        raise malformed("externalAccountBinding payload must be the account's JWK") from None
    if bound_key.thumbprint != signed.jwk.thumbprint:
        raise malformed("externalAccountBinding payload is not the key that signs this request")
    assert eab.kid is not None
    credential = await ctx.core.credentials.get_mac_key(EAB_PROTOCOL, eab.kid)
    if credential is None or credential.secret is None:
        raise unauthorized("unknown or revoked external account key id")
    verify_mac(eab, credential.secret)
    if credential.profile and credential.profile != profile and profile != ctx.default_profile:
        raise unauthorized(f"this external account key is for profile {credential.profile}")
    label = f"acme-key:{signed.jwk.thumbprint}"
    if credential.bound_to not in (None, label) or (
        credential.bound_to is None and not await ctx.core.credentials.bind(EAB_PROTOCOL, eab.kid, label)
    ):
        raise unauthorized("this external account key is already bound to another account")
    return eab.kid, credential.profile


async def account_resource(ctx: AcmeContext, signed: Signed, account_id: int) -> Reply:
    account = signed.require_account()
    if account.id != account_id:
        raise unauthorized("an account can only read or change itself")
    update = decode_account_update(signed.payload)
    if update is not None:
        values: dict[str, object] = {}
        if update.contact is not None:
            values["contact"] = json.dumps(list(update.contact))
        if update.deactivate:
            values["status"] = "deactivated"
        changed = await ctx.accounts.update(
            account.id, values, "acme.account." + ("deactivated" if update.deactivate else "updated")
        )
        assert changed is not None
        if update.deactivate and account.status != "deactivated":
            events.account_deactivated(changed)
        account = changed
        ctx.remember_account(account)
    return Reply(200, encode_account(account, ctx.urls), location=ctx.urls.account(account.id))


async def account_orders(ctx: AcmeContext, signed: Signed, account_id: int) -> Reply:
    account = signed.require_account()
    if account.id != account_id:
        raise unauthorized("an account can only list its own orders")
    if signed.payload:
        raise malformed("the orders list is read with POST-as-GET (empty payload)")
    ids = await ctx.orders.ids_of(account.id)
    return Reply(200, {"orders": [ctx.urls.order(i) for i in ids]})


async def key_change(ctx: AcmeContext, signed: Signed, url: str) -> Reply:
    """RFC 8555 §7.3.5: the inner JWS, signed by the new key, names the account and its old key."""
    account: Account = signed.require_account()
    inner = parse_jws(signed.payload, allow_no_nonce=True)
    if inner.jwk is None:
        raise malformed("keyChange inner JWS must carry the new key as 'jwk'")
    if inner.url != url:
        raise malformed("keyChange inner 'url' must equal the outer 'url'")
    new_key = parse_jwk(inner.jwk)
    verify(inner, new_key)
    body = decode_key_change_inner(inner.payload)
    if body.account != ctx.urls.account(account.id):
        raise malformed("keyChange 'account' is not the account that signed the request")
    if parse_jwk(body.old_key).thumbprint != account.thumbprint:
        raise malformed("keyChange 'oldKey' is not the account's current key")
    if new_key.thumbprint == account.thumbprint:
        # Checked before the look-up below, which would find this very account and call it another.
        raise malformed("keyChange: the new key is the account's current key")
    taken = await ctx.accounts.by_thumbprint(new_key.thumbprint)
    if taken is not None:
        raise AcmeProblem(
            "conflict",
            "another account already uses the new key",
            409,
            headers={"Location": ctx.urls.account(taken.id)},
        )
    changed = await ctx.accounts.update(
        account.id, {"jwk": new_key.canonical, "thumbprint": new_key.thumbprint}, "acme.account.key_changed"
    )
    if changed is None:
        raise AcmeProblem("conflict", "another account already uses the new key", 409)
    events.account_key_changed(changed, account.thumbprint)
    ctx.remember_account(changed)
    return Reply(200, encode_account(changed, ctx.urls), location=ctx.urls.account(changed.id))
