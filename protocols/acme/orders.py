"""Orders (RFC 8555 §7.4): creation within the profile's rules, and the status machine of §7.1.6.

Order status is stored and moved only by compare-and-set; pending orders are
re-evaluated from their authorizations whenever they are read, so a validation
finishing in any process is seen by every other.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca.errors import CAError
from ca.profiles.model import Profile
from ca.profiles.policy import cabf_max_days, check_names
from protocols.acme import events
from protocols.acme.ari import find_certificate, parse_cert_id
from protocols.acme.auth import NOT_LOADED, Signed
from protocols.acme.challenges import challenge_types, new_token
from protocols.acme.codec import decode_new_order, encode_order
from protocols.acme.context import AcmeContext, Reply
from protocols.acme.errors import AcmeProblem, Subproblem, malformed, not_found, unauthorized
from protocols.acme.messages import OrderIdentifier
from protocols.acme.records import Account, Authz, NewAuthz, Order
from protocols.acme.reuse import reuse_period

log = logging.getLogger("tetra.acme.orders")
RECOVER_AFTER = dt.timedelta(seconds=10)
FAILED_AUTHZ = ("invalid", "deactivated", "expired", "revoked")


def new_authz_spec(ident: OrderIdentifier) -> NewAuthz:
    base = ident.base
    return NewAuthz(base, ident.wildcard, tuple((t, new_token()) for t in challenge_types(base, ident.wildcard)))


def check_profile_for(ctx: AcmeContext, account: Account, name: str) -> Profile:
    """The account may order from this profile: ACME allowed, EAB present where required."""
    profile = ctx.acme_profiles().get(name)
    if profile is None:
        raise AcmeProblem("invalidProfile", f"profile {name!r} is not offered over ACME")
    if ctx.config.eab_required(name) and not account.eab_key_id:
        raise unauthorized(f"profile {name} requires an account registered with external account binding")
    if account.eab_profile and account.eab_profile != name:
        raise unauthorized(f"this account's external account key only allows profile {account.eab_profile}")
    return profile


def check_identifiers(profile: Profile, idents: tuple[OrderIdentifier, ...]) -> None:
    """Each identifier against the profile's name rules, reported one by one (RFC 8555 §6.7.1)."""
    subproblems = []
    for ident in idents:
        try:
            check_names(profile, (ident.identifier,))
        except CAError as exc:
            subproblems.append(
                Subproblem(
                    "rejectedIdentifier", exc.detail, {"type": ident.identifier.type, "value": ident.identifier.value}
                )
            )
    if subproblems:
        detail = (
            subproblems[0].detail
            if len(subproblems) == 1
            else f"{len(subproblems)} identifiers are refused by profile {profile.name}"
        )
        raise AcmeProblem("rejectedIdentifier", detail, 400, subproblems=tuple(subproblems))
    try:
        check_names(profile, tuple(i.identifier for i in idents))
    except CAError as exc:
        raise AcmeProblem("rejectedIdentifier", exc.detail) from None


def check_validity(
    profile: Profile, not_before: dt.datetime | None, not_after: dt.datetime | None, now: dt.datetime
) -> None:
    """notBefore/notAfter within the profile's limits, so the order fails now, not at finalize."""
    if not_before is None and not_after is None:
        return
    if not profile.allow_requested_validity:
        raise malformed(f"profile {profile.name} does not accept notBefore/notAfter")
    start = not_before or now
    if not_before and not_before > now + dt.timedelta(days=1):
        raise malformed("notBefore is more than a day in the future")
    if not_after is not None:
        if not_after <= now:
            raise malformed("notAfter is in the past")
        max_days = min(profile.max_days, cabf_max_days(now)) if profile.cabf_max_validity else profile.max_days
        if (not_after - max(start, now - dt.timedelta(days=1))).total_seconds() + 1 > max_days * 86400:
            raise malformed(f"requested validity exceeds profile {profile.name}'s {max_days} days")


async def _replaced(ctx: AcmeContext, account: Account, cert_id_text: str) -> int:
    """RFC 9773 §5: the replaced certificate is ours, this account's, and not replaced yet."""
    record = await find_certificate(ctx.core, parse_cert_id(cert_id_text))
    if record is None:
        raise malformed("the certificate named in 'replaces' was not issued by this CA")
    owner = await ctx.orders.for_certificate(record.id)
    if owner is None or owner.account_id != account.id:
        raise unauthorized("the certificate named in 'replaces' was not issued to this account")
    for order, authzs in await ctx.orders.replacements(record.id):
        # Read as the client would see it: an expired or stuck (ST-02) replacement fails here
        # instead of blocking the certificate's renewal until someone polls it.
        if (await current_status(ctx, order, authzs)).status != "invalid":
            raise AcmeProblem("alreadyReplaced", "the certificate named in 'replaces' already has a replacement", 409)
    return record.id


async def new_order(ctx: AcmeContext, signed: Signed, directory: str | None) -> Reply:
    account = signed.require_account()
    request = decode_new_order(signed.payload)
    offered = ctx.offered(directory)
    name = request.profile or ctx.directory_profile(directory)
    if name not in offered:
        raise AcmeProblem(
            "invalidProfile",
            f"profile {name!r} is not offered by this directory (offered: {', '.join(offered) or 'none'})",
        )
    profile = check_profile_for(ctx, account, name)
    check_identifiers(profile, request.identifiers)
    now = ctx.clock.now()
    check_validity(profile, request.not_before, request.not_after, now)
    charges = ctx.limiter.new_order(account.id, (i.base for i in request.identifiers))
    replaces_id = await _replaced(ctx, account, request.replaces) if request.replaces else None
    cfg = ctx.config
    order = await ctx.orders.create(
        account_id=account.id,
        profile=name,
        identifiers=[i.identifier for i in request.identifiers],
        new_authzs=[new_authz_spec(i) for i in request.identifiers],
        reuse_after=now - reuse_period(cfg.authz_reuse, now) if cfg.authz_reuse else None,
        now=now,
        order_expires=now + dt.timedelta(seconds=cfg.order_lifetime),
        authz_expires=min(
            now + dt.timedelta(seconds=cfg.authz_lifetime), now + dt.timedelta(seconds=cfg.order_lifetime)
        ),
        not_before=request.not_before,
        not_after=request.not_after,
        replaces=request.replaces,
        replaces_cert_id=replaces_id,
        charges=charges,
    )
    events.order_created(order)
    return Reply(201, encode_order(order, order.status, ctx.urls), location=ctx.urls.order(order.id))


async def owned_order(
    ctx: AcmeContext, account: Account, order_id: int, preloaded: Any = NOT_LOADED
) -> tuple[Order, list[Authz]]:
    found = await ctx.orders.with_authzs(order_id) if preloaded is NOT_LOADED else preloaded
    if found is None:
        raise not_found("no such order")
    if found[0].account_id != account.id:
        raise unauthorized("this order belongs to another account")
    return found


def _authz_failure(authzs: list[Authz], now: dt.datetime) -> dict[str, Any]:
    subproblems = []
    for authz in authzs:
        status = authz.current_status(now)
        if status in FAILED_AUTHZ:
            error = next((c.error for c in authz.challenges if c.error), None)
            subproblems.append(
                {
                    "type": (error or {}).get("type", "urn:ietf:params:acme:error:unauthorized"),
                    "detail": (error or {}).get("detail", f"authorization is {status}"),
                    "identifier": {"type": authz.identifier.type, "value": authz.identifier.value},
                }
            )
    detail = subproblems[0]["detail"] if subproblems else "an authorization failed"
    return {
        "type": "urn:ietf:params:acme:error:unauthorized",
        "detail": detail,
        "status": 403,
        "subproblems": subproblems,
    }


async def current_status(ctx: AcmeContext, order: Order, authzs: list[Authz]) -> Order:
    """Apply §7.1.6 to a stored order: expiry, authorization outcomes, stuck processing (ST-02)."""
    now = ctx.clock.now()
    orders = ctx.orders
    if order.status in ("pending", "ready"):
        if order.expires_at <= now:
            error = {"type": "urn:ietf:params:acme:error:malformed", "detail": "order expired", "status": 400}
            await orders.compare_and_set(order.id, (order.status,), {"status": "invalid", "error": json.dumps(error)})
            return _with(order, status="invalid", error=error)
        statuses = [a.current_status(now) for a in authzs]
        if any(s in FAILED_AUTHZ for s in statuses) or len(authzs) != len(order.authz_ids):
            error = _authz_failure(authzs, now)
            await orders.compare_and_set(order.id, (order.status,), {"status": "invalid", "error": json.dumps(error)})
            return _with(order, status="invalid", error=error)
        if all(s == "valid" for s in statuses) and order.status == "pending":
            await orders.compare_and_set(order.id, ("pending",), {"status": "ready"})
            return _with(order, status="ready")
        if order.status == "ready" and not all(s == "valid" for s in statuses):
            return _with(order, status="pending")  # pragma: no cover - valid authzs only expire (handled above)
    elif order.status == "processing":
        return await _check_processing(ctx, order, now)
    return order


async def _check_processing(ctx: AcmeContext, order: Order, now: dt.datetime) -> Order:
    if order.request_id is not None:  # waiting for an operator's approval
        from ca.enrollment import Issued

        try:
            outcome = await ctx.core.poll(order.request_id)
        except CAError as exc:
            return await fail_order(
                ctx, order, {"type": "urn:ietf:params:acme:error:badCSR", "detail": exc.public_detail(), "status": 400}
            )
        if isinstance(outcome, Issued):
            await ctx.orders.compare_and_set(
                order.id, ("processing",), {"status": "valid", "certificate_id": outcome.record_id}
            )
            return _with(order, status="valid", certificate_id=outcome.record_id)
        return order
    started = order.processing_at or order.created_at
    if now - started < RECOVER_AFTER:
        return order
    cert_id = await _find_issued(ctx, order)
    if cert_id is not None:  # ST-01 F4: the certificate was made; the order just never heard
        await ctx.orders.compare_and_set(order.id, ("processing",), {"status": "valid", "certificate_id": cert_id})
        return _with(order, status="valid", certificate_id=cert_id)
    if now - started >= dt.timedelta(seconds=ctx.config.stuck_after):
        return await fail_order(
            ctx,
            order,
            {
                "type": "urn:ietf:params:acme:error:serverInternal",
                "detail": "issuance did not complete; place a new order",
                "status": 500,
            },
        )
    return order


async def _find_issued(ctx: AcmeContext, order: Order) -> int | None:
    """The certificate this order's finalize made, found by requester, names and key."""
    if order.csr_key is None:
        return None
    names = {str(i) for i in order.identifiers}
    since = order.processing_at or order.created_at
    for cert_id, sans, der in await ctx.orders.issued_since(requester_name(order.account_id), since):
        if set(sans) != names:
            continue
        key = x509.load_der_x509_certificate(der).public_key()
        if spki_sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)) == order.csr_key:
            return cert_id
    return None


def spki_sha256(spki: bytes) -> str:
    return hashlib.sha256(spki).hexdigest()


def requester_name(account_id: int) -> str:
    return f"acme:{account_id}"


async def fail_order(ctx: AcmeContext, order: Order, error: dict[str, Any]) -> Order:
    await ctx.orders.compare_and_set(order.id, (order.status,), {"status": "invalid", "error": json.dumps(error)})
    return _with(order, status="invalid", error=error)


def _with(order: Order, **changes: Any) -> Order:
    from dataclasses import replace

    return replace(order, **changes)


async def order_resource(ctx: AcmeContext, signed: Signed, order_id: int) -> Reply:
    if signed.payload:
        raise malformed("an order is read with POST-as-GET (empty payload)")
    order, authzs = await owned_order(ctx, signed.require_account(), order_id, signed.loaded)
    order = await current_status(ctx, order, authzs)
    retry = ctx.config.retry_after if order.status in ("pending", "processing") else None
    return Reply(200, encode_order(order, order.status, ctx.urls), location=ctx.urls.order(order.id), retry_after=retry)
