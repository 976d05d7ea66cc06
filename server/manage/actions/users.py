"""Users of the management plane and their API tokens, as an administrator manages them and as
each user manages its own tokens.

Administrators (users.manage) add, disable and enable users and revoke anyone's token; whoever
holds users.read lists them and their tokens. Every user, whatever its role, lists, creates and
revokes its OWN tokens: another user's token is refused as if it did not exist (OPS-02's rule,
applied to tokens). A token made with a scoped token is scoped no wider than the one that made
it, so a narrow automation token cannot mint itself a broader one. The stores audit each change
with actor = principal.actor (OPS-07) and never record a password or a token's secret (OPS-10).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from typing import TypeVar

from ca.errors import BadRequest
from ca.operators.errors import UnknownOperator
from ca.operators.model import ApiToken, User
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.operators.tokens import requested_scopes
from ca.service import CertificateAuthority
from server.manage.actions.access import require
from server.manage.actions.errors import Conflict, Forbidden, NotVisible

T = TypeVar("T")


async def list_users(ca: CertificateAuthority, principal: Principal) -> list[User]:
    require(principal, Permission.USERS_READ)
    return await ca.operators.users.list()


async def show_user(ca: CertificateAuthority, principal: Principal, name: str) -> User:
    require(principal, Permission.USERS_READ)
    return await _known(ca.operators.users.get(name), "user")


async def add_user(
    ca: CertificateAuthority,
    principal: Principal,
    name: str,
    role: str,
    teams: frozenset[str],
    *,
    guest_access: str | None,
    expires_at: dt.datetime | None,
    password: str | None,
) -> User:
    """The store checks what a user may be (role, teams, a guest's access and expiry)."""
    require(principal, Permission.USERS_MANAGE)
    return await ca.operators.users.add(
        name,
        role,
        teams,
        actor=principal.actor,
        guest_access=guest_access,
        expires_at=expires_at,
        password=password,
    )


async def disable_user(ca: CertificateAuthority, principal: Principal, name: str) -> User:
    """Its tokens and logins are refused from now on. Not one's own user: the last
    administrator must not lock everyone out by a slip."""
    require(principal, Permission.USERS_MANAGE)
    if name == principal.user:
        raise Conflict("you cannot disable your own user; another administrator can")
    return await _known(ca.operators.users.disable(name, actor=principal.actor), "user")


async def enable_user(ca: CertificateAuthority, principal: Principal, name: str) -> User:
    require(principal, Permission.USERS_MANAGE)
    return await _known(ca.operators.users.enable(name, actor=principal.actor), "user")


async def user_tokens(ca: CertificateAuthority, principal: Principal, name: str) -> list[ApiToken]:
    """Anyone's tokens, for whoever may read users."""
    require(principal, Permission.USERS_READ)
    await show_user(ca, principal, name)
    return await ca.operators.tokens.list(name)


async def own_tokens(ca: CertificateAuthority, principal: Principal) -> list[ApiToken]:
    return await ca.operators.tokens.list(principal.user)


async def create_own_token(
    ca: CertificateAuthority,
    principal: Principal,
    *,
    label: str,
    scope_words: list[str],
    expires_at: dt.datetime | None,
) -> tuple[ApiToken, str]:
    """A token of the acting user: its record and the secret, returned only now. The scopes
    are asked for as `tetra token create --scope` takes them (permissions, or `read`)."""
    try:
        scopes = requested_scopes(scope_words, principal.permissions)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if scopes is not None and not scopes <= principal.permissions:
        beyond = ", ".join(sorted(scopes - principal.permissions))
        raise Forbidden(f"you cannot give a token permissions you do not hold here: {beyond}")
    if scopes is None and principal.token_id is not None:
        scopes = (await ca.operators.tokens.get(principal.token_id)).scopes  # no wider than this token
    return await ca.operators.tokens.create(
        principal.user, label=label, scopes=scopes, expires_at=expires_at, actor=principal.actor
    )


async def revoke_token(ca: CertificateAuthority, principal: Principal, token_id: int) -> ApiToken:
    """One's own token, or anyone's for an administrator (users.manage)."""
    token = await _known(ca.operators.tokens.get(token_id), "token")
    if token.user != principal.user and not principal.can(Permission.USERS_MANAGE):
        raise NotVisible("token")
    return await ca.operators.tokens.revoke(token_id, actor=principal.actor)


async def _known(lookup: Awaitable[T], what: str) -> T:
    """The operator stores refuse an unknown name with UnknownOperator (a bad argument to a
    command); to the API it is a missing resource."""
    try:
        return await lookup
    except UnknownOperator:
        raise NotVisible(what) from None
