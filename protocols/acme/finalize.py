"""finalize (RFC 8555 §7.4): CSR checks, then issuance through the core, exactly once per order.

Policy runs once (``core.decide``, a dry run: a refused CSR leaves the order
ready), and checks that every name is proven by this account's valid
authorizations (SEC-01, ACME-20). Then the order is moved to "processing" by a
compare-and-set before ``core.enroll`` issues exactly that decision, so
concurrent or repeated finalize requests never make a second certificate (ST-01).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ca.csr import enrollment_from_csr, parse_csr
from ca.enrollment import (
    AuthMethod,
    CertificateRef,
    EnrollmentKind,
    EnrollmentRequest,
    Identifier,
    Issued,
    Requester,
)
from ca.errors import CAError, FailureReason
from protocols.acme import events
from protocols.acme.auth import Signed
from protocols.acme.codec import decode_finalize, encode_order
from protocols.acme.context import AcmeContext, Reply
from protocols.acme.errors import AcmeProblem, problem_from_ca_error
from protocols.acme.orders import current_status, fail_order, owned_order, requester_name, spki_sha256
from protocols.acme.records import Authz, Order
from protocols.acme.va.errors import ValidationError


def order_not_ready(order: Order, retry_after: int | None = None) -> AcmeProblem:
    return AcmeProblem("orderNotReady", f"order is {order.status}, not ready to finalize", 403, retry_after=retry_after)


def bad_csr(detail: str) -> AcmeProblem:
    return AcmeProblem("badCSR", detail, 400)


async def _recheck_caa(ctx: AcmeContext, authzs: list[Authz], account_uri: str, now: dt.datetime) -> None:
    """ACME-23: CAA again for every name whose check is older than the configured window."""
    cfg = ctx.config.validation
    if not cfg.caa:
        return
    limit = now - dt.timedelta(seconds=cfg.caa_recheck_seconds)
    for authz in authzs:
        if authz.identifier.type != "dns" or (authz.validated_at and authz.validated_at > limit):
            continue
        try:
            await ctx.va.check_caa(
                authz.identifier.value, wildcard=authz.wildcard, account_uri=account_uri, method=authz.method or ""
            )
        except ValidationError as exc:
            raise AcmeProblem("caa", exc.detail, 403) from None


def _read_csr(csr_der: bytes, order: Order, requester: Requester, signed: Signed) -> tuple[EnrollmentRequest, bytes]:
    """The CSR, read once (its names and key come from the EnrollmentRequest it stands for), and
    its SubjectPublicKeyInfo; badCSR unless it names exactly the order's identifiers with a key
    that is not the account's."""
    try:
        enrollment = enrollment_from_csr(
            parse_csr(csr_der),
            protocol="acme",
            profile_name=order.profile,
            requester=requester,
            transaction_id=f"acme-order-{order.id}",
        )
        spki = enrollment.public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except CAError as exc:
        raise bad_csr(exc.detail) from None
    except (ValueError, TypeError) as exc:
        raise bad_csr(f"CSR public key is not usable: {exc}") from None
    names = enrollment.subject_alt_names
    if set(names) != set(order.identifiers) or len(names) != len(set(names)):
        wanted = ", ".join(sorted(str(i) for i in order.identifiers))
        got = ", ".join(sorted(str(i) for i in names)) or "none"
        raise bad_csr(f"the CSR must name exactly the order's identifiers ({wanted}); it names {got}")
    if spki == signed.jwk.spki():
        raise bad_csr("the certificate key must not be the account key")  # CORE-12; CA and RA keys: core.decide
    return enrollment, spki


async def finalize(ctx: AcmeContext, signed: Signed, order_id: int) -> Reply:
    account = signed.require_account()
    order, authzs = await owned_order(ctx, account, order_id, signed.loaded)
    now = ctx.clock.now()
    from_statuses: tuple[str, ...] = ("ready",)
    if (
        order.status == "pending"
        and order.expires_at > now
        and authzs
        and len(authzs) == len(order.authz_ids)
        and all(a.current_status(now) == "valid" for a in authzs)
    ):
        # Ready in all but the stored status: go straight to processing below (one write, not two);
        # the compare-and-set accepts either status, so a concurrent pending -> ready is harmless.
        order = replace(order, status="ready")
        from_statuses = ("pending", "ready")
    else:
        order = await current_status(ctx, order, authzs)
    if order.status != "ready":
        raise order_not_ready(order, ctx.config.retry_after if order.status == "processing" else None)
    requester = Requester(requester_name(account.id), AuthMethod.ACME_ACCOUNT)
    csr_der = decode_finalize(signed.payload).csr_der
    try:
        enrollment, spki = _read_csr(csr_der, order, requester, signed)
    except AcmeProblem as refused:  # a refused issuance; the core logs the refusals of decide (below)
        events.csr_refused(order, refused)
        raise
    now = ctx.clock.now()
    await _recheck_caa(ctx, authzs, ctx.urls.account(account.id), now)
    proven = frozenset(a.proves for a in authzs if a.current_status(now) == "valid" and a.account_id == account.id)
    # The replaced certificate is read once, here, and handed to decide (RFC 9773 renewal lineage).
    old = await ctx.core.certificate(order.replaces_cert_id) if order.replaces_cert_id is not None else None
    enrollment = replace(
        enrollment,
        requester=replace(requester, proven_identifiers=frozenset[Identifier](proven)),
        kind=EnrollmentKind.RENEW if old else EnrollmentKind.NEW,
        not_before=order.not_before,
        not_after=order.not_after,
        replaces=CertificateRef(old.issuer, old.serial) if old else None,
    )
    try:
        # Policy, once, before the order moves: a refused CSR leaves the order ready for another try.
        decision = await ctx.core.decide(enrollment, replaced=old)
    except CAError as exc:
        raise problem_from_ca_error(exc, during_finalize=True) from None
    marked = await ctx.orders.compare_and_set(
        order.id, from_statuses, {"status": "processing", "processing_at": now, "csr_key": spki_sha256(spki)}
    )
    if not marked:
        latest = await ctx.orders.get(order.id)
        raise order_not_ready(latest or order)
    order = replace(order, status="processing", processing_at=now, csr_key=spki_sha256(spki))
    try:
        # Issues exactly what was decided; the order's move to valid commits with the certificate
        # row (one commit, not two).
        outcome = await ctx.core.enroll(decision, on_issued=ctx.orders.on_issued(order.id))
    except CAError as exc:
        problem = problem_from_ca_error(exc, during_finalize=True)
        if exc.reason is FailureReason.UNAVAILABLE:
            # Nothing was issued and the fault is ours: the client may finalize again later.
            await ctx.orders.compare_and_set(order.id, ("processing",), {"status": "ready", "processing_at": None})
        else:
            await fail_order(ctx, order, problem.to_json())
        raise problem from None
    if isinstance(outcome, Issued):
        order = replace(order, status="valid", certificate_id=outcome.record_id)
        return Reply(200, encode_order(order, "valid", ctx.urls), location=ctx.urls.order(order.id))
    await ctx.orders.compare_and_set(order.id, ("processing",), {"request_id": outcome.request_id})
    return Reply(
        200,
        encode_order(order, "processing", ctx.urls),
        location=ctx.urls.order(order.id),
        retry_after=outcome.retry_after,
    )


__all__ = ["finalize"]
