"""ACME's activity events (ca/activity.py): accounts, orders, authorizations and failed
validations, each logged once where ACME decides it. The core logs the issuance, the refusal
and the revocation that follow (ca/service_events.py); docs/logging.md lists the fields."""

from __future__ import annotations

from typing import Any

from ca.activity import Event, log_event
from protocols.acme.errors import AcmeProblem
from protocols.acme.records import Account, Authz, Challenge, Order

PROTOCOL = "acme"


def _name(authz: Authz) -> str:
    """As orders name identifiers (dns:www.example.com), with the wildcard an authorization drops."""
    return f"{authz.identifier.type}:{'*.' if authz.wildcard else ''}{authz.identifier.value}"


def account_created(account: Account, remote: str) -> None:
    log_event(
        Event.ACCOUNT_CREATED,
        protocol=PROTOCOL,
        account=account.id,
        eab_key_id=account.eab_key_id,
        profile=account.eab_profile,
        remote=remote,
    )


def account_deactivated(account: Account) -> None:
    log_event(Event.ACCOUNT_DEACTIVATED, protocol=PROTOCOL, account=account.id)


def account_key_changed(account: Account, old_thumbprint: str) -> None:
    log_event(
        Event.ACCOUNT_KEY_CHANGED,
        protocol=PROTOCOL,
        account=account.id,
        old_key=old_thumbprint,
        new_key=account.thumbprint,
    )


def order_created(order: Order) -> None:
    log_event(
        Event.ORDER_CREATED,
        protocol=PROTOCOL,
        profile=order.profile,
        account=order.account_id,
        order=order.id,
        identifiers=[str(i) for i in order.identifiers],
        replaces=order.replaces,
    )


def csr_refused(order: Order, problem: AcmeProblem) -> None:
    """finalize refused the CSR before the core saw it (unreadable, other names, the account's key):
    the same `issuance.refused` the core logs for what its policy refuses, reason `bad_csr`."""
    log_event(
        Event.REFUSED,
        protocol=PROTOCOL,
        profile=order.profile,
        account=order.account_id,
        order=order.id,
        identifiers=[str(i) for i in order.identifiers],
        reason="bad_csr",
        detail=problem.detail,
    )


def authorization_valid(authz: Authz, challenge: Challenge) -> None:
    log_event(
        Event.AUTHORIZATION_VALID,
        protocol=PROTOCOL,
        account=authz.account_id,
        authorization=authz.id,
        identifier=_name(authz),
        method=challenge.type,
    )


def validation_failed(authz: Authz, challenge: Challenge, problem: dict[str, Any] | None) -> None:
    problem = problem or {}
    log_event(
        Event.VALIDATION_FAILED,
        protocol=PROTOCOL,
        account=authz.account_id,
        authorization=authz.id,
        identifier=_name(authz),
        method=challenge.type,
        reason=str(problem.get("type", "")).rpartition(":")[2] or None,
        detail=problem.get("detail"),
    )


__all__ = [
    "account_created",
    "account_deactivated",
    "account_key_changed",
    "authorization_valid",
    "csr_refused",
    "order_created",
    "validation_failed",
]
