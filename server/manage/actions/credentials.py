"""Protocol credentials an operator hands out: ACME EAB keys, SCEP one-time challenges, EST
users and CMP shared secrets: create, list, revoke.

Creating one goes through the very function the protocol's CLI command calls
(protocols/<name>/cli.py), so a profile that `tetra scep challenge` refuses is refused here
too, with the same words. A secret is returned once, by `create_*`, and never again: listings
carry no secret (OPS-10; a SCEP challenge is stored only as its hash, an EST password as a slow
hash). The store audits each creation and revocation with actor = principal.actor (OPS-07).

Credentials have no team: they belong to the CA's protocols, which only roles that see every
team manage (credentials.read, credentials.manage).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ca.credentials import challenge_key
from ca.errors import BadRequest, ConfigError
from ca.operators.principal import Principal
from ca.operators.roles import Permission
from ca.records import Credential
from ca.service import CertificateAuthority
from protocols.acme.b64 import b64e
from protocols.acme.cli import create_eab_key
from protocols.cmp.cli import add_secret
from protocols.est.cli import add_user
from protocols.scep.cli import bound_identities, create_one_time_challenge
from server.config import ServerConfig
from server.manage.actions.access import require
from server.manage.actions.errors import Conflict, NotVisible
from server.wiring import protocol_context

T = TypeVar("T")
WHAT = "credential"


class CredentialType(enum.StrEnum):
    ACME_EAB = "acme-eab"
    SCEP_CHALLENGE = "scep-challenge"
    EST_USER = "est-user"
    CMP_SECRET = "cmp-secret"

    @property
    def stored_as(self) -> tuple[str, str]:
        """(protocol, kind) in the credential store."""
        return _STORED[self]


_STORED = {
    CredentialType.ACME_EAB: ("acme", "mac-key"),
    CredentialType.SCEP_CHALLENGE: ("scep", "challenge"),
    CredentialType.EST_USER: ("est", "password"),
    CredentialType.CMP_SECRET: ("cmp", "mac-key"),
}


@dataclass(frozen=True)
class CredentialView:
    """A credential as listed: everything but its secret. `name` is the key id, user name or
    sender reference; None for a SCEP challenge, which is its own (secret) name."""

    id: int
    type: CredentialType
    name: str | None
    profile: str | None
    identities: tuple[str, ...]
    state: str  # active | used | expired | revoked
    bound_to: str | None
    created_at: dt.datetime | None
    expires_at: dt.datetime | None
    used_at: dt.datetime | None


@dataclass(frozen=True)
class Created:
    """A new credential and its secret (shown once). `secret` is None when the operator chose
    it (an EST password or CMP secret given in the request): it is not echoed back."""

    credential: CredentialView
    secret: str | None


async def listing(
    ca: CertificateAuthority, principal: Principal, kinds: tuple[CredentialType, ...], *, after_id: int | None
) -> list[CredentialView]:
    require(principal, Permission.CREDENTIALS_READ)
    now = ca.clock.now()
    views: list[CredentialView] = []
    for kind in kinds:
        rows = await ca.credentials.list_credentials(*kind.stored_as)
        views += [_view(kind, credential, revoked, now) for credential, revoked in rows]
    return sorted((v for v in views if after_id is None or v.id > after_id), key=lambda v: v.id)


async def create_eab(
    ca: CertificateAuthority, config: ServerConfig, principal: Principal, *, profile: str | None, key_id: str | None
) -> Created:
    require(principal, Permission.CREDENTIALS_MANAGE)
    ctx = protocol_context("acme", ca, config)
    made_id, secret = await _refused_as_bad_request(
        lambda: create_eab_key(ctx, profile=profile, key_id=key_id, actor=principal.actor)
    )
    # The HMAC key as RFC 8555 clients take it (base64url), as `tetra acme eab create` prints it.
    return Created(await _find(ca, CredentialType.ACME_EAB, made_id), b64e(secret))


async def create_scep_challenge(
    ca: CertificateAuthority,
    config: ServerConfig,
    principal: Principal,
    *,
    profile: str,
    ttl: dt.timedelta,
    cn: str | None,
    dns: list[str],
) -> Created:
    require(principal, Permission.CREDENTIALS_MANAGE)
    ctx = protocol_context("scep", ca, config)

    async def create() -> tuple[str, dt.datetime]:
        identities = bound_identities(cn, dns)
        return await create_one_time_challenge(ctx, profile, ttl=ttl, identities=identities, actor=principal.actor)

    challenge, _ = await _refused_as_bad_request(create)
    return Created(await _find(ca, CredentialType.SCEP_CHALLENGE, challenge_key(challenge)), challenge)


async def create_est_user(
    ca: CertificateAuthority,
    config: ServerConfig,
    principal: Principal,
    *,
    username: str,
    profile: str | None,
    password: str | None,
) -> Created:
    require(principal, Permission.CREDENTIALS_MANAGE)
    ctx = protocol_context("est", ca, config)
    made = await _refused_as_bad_request(
        lambda: add_user(ctx, username, profile=profile, password=password, actor=principal.actor)
    )
    return Created(await _find(ca, CredentialType.EST_USER, username), None if password else made)


async def create_cmp_secret(
    ca: CertificateAuthority,
    config: ServerConfig,
    principal: Principal,
    *,
    reference: str,
    profile: str | None,
    secret: str | None,
) -> Created:
    require(principal, Permission.CREDENTIALS_MANAGE)
    ctx = protocol_context("cmp", ca, config)
    _, text = await _refused_as_bad_request(
        lambda: add_secret(ctx, reference, profile=profile or "", secret=secret, actor=principal.actor)
    )
    return Created(await _find(ca, CredentialType.CMP_SECRET, reference), None if secret is not None else text)


async def revoke(ca: CertificateAuthority, principal: Principal, credential_id: int) -> CredentialView:
    """Withdraw one credential by its id, whatever its type; one already revoked is a conflict."""
    require(principal, Permission.CREDENTIALS_MANAGE)
    kind, credential = await _stored(ca, credential_id)
    protocol, _ = kind.stored_as
    if not await ca.credentials.revoke(protocol, credential.key_id, actor=principal.actor):
        raise Conflict(f"credential {credential_id} is already revoked")  # revoked meanwhile
    return _view(kind, credential, True, ca.clock.now())


async def _refused_as_bad_request(make: Callable[[], Awaitable[T]]) -> T:
    """The protocol commands refuse bad arguments as UsageError naming the option ("--ttl:
    ..."); to an API client that is a bad request naming the body member of the same name."""
    try:
        return await make()
    except ConfigError as exc:
        raise BadRequest(_OPTION.sub(r"body.\1: ", str(exc))) from None


_OPTION = re.compile(r"^--([a-z_-]+): ")


async def _find(ca: CertificateAuthority, kind: CredentialType, key_id: str) -> CredentialView:
    now = ca.clock.now()
    for credential, revoked in await ca.credentials.list_credentials(*kind.stored_as):
        if credential.key_id == key_id and not revoked:
            return _view(kind, credential, revoked, now)
    raise AssertionError(f"the {kind.value} just created is not in the store")


async def _stored(ca: CertificateAuthority, credential_id: int) -> tuple[CredentialType, Credential]:
    """The credential with this id and its type; NotVisible if there is none (or it is revoked:
    a revoked credential is revoked once)."""
    for kind in CredentialType:
        for credential, revoked in await ca.credentials.list_credentials(*kind.stored_as):
            if credential.id == credential_id:
                if revoked:
                    raise Conflict(f"credential {credential_id} is already revoked")
                return kind, credential
    raise NotVisible(WHAT)


def _view(kind: CredentialType, credential: Credential, revoked: bool, now: dt.datetime) -> CredentialView:
    return CredentialView(
        id=credential.id,
        type=kind,
        name=None if kind is CredentialType.SCEP_CHALLENGE else credential.key_id,
        profile=credential.profile,
        identities=credential.identities,
        state=credential.state(revoked, now),
        bound_to=credential.bound_to,
        created_at=credential.created_at,
        expires_at=credential.expires_at,
        used_at=credential.used_at,
    )
