"""What every ACME handler shares: the core, one store per resource, nonces, the validation authority, URLs."""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from ca.enrollment import AuthMethod
from ca.errors import CAError, ConfigError
from ca.interface import CoreApi
from ca.profiles.model import Profile
from protocols.acme.challenges import ValidationAuthority
from protocols.acme.chaos import announce
from protocols.acme.codec import Urls, dumps
from protocols.acme.config import AcmeConfig
from protocols.acme.errors import AcmeProblem, problem_from_ca_error, render_problem
from protocols.acme.jwk import Jwk, parse_jwk
from protocols.acme.nonces import NonceService
from protocols.acme.ratelimit import RateLimiter, address_key
from protocols.acme.records import Account
from protocols.acme.refusals import RefusalLimiter
from protocols.acme.store.accounts import AccountStore
from protocols.acme.store.authorizations import AuthzStore
from protocols.acme.store.nonces import NonceStore
from protocols.acme.store.orders import OrderStore
from protocols.acme.store.renewals import RenewNowStore
from protocols.base import WireRequest, WireResponse

log = logging.getLogger("tetra.acme")
JWK_CACHE_SIZE = 10_000
MAX_LOGGED_DETAIL = 200  # characters of a problem's detail in its log record


@dataclass(frozen=True)
class Reply:
    """A successful answer before the nonce and index link are added."""

    status: int
    body: dict[str, Any] | bytes | None = None
    location: str | None = None
    links: tuple[str, ...] = ()
    retry_after: int | None = None
    content_type: str = "application/json"


def log_refusal(problem: AcmeProblem, exc: AcmeProblem | CAError, request: WireRequest | None) -> None:
    """One record per refused request (SEC-06): where it came from and the problem type. Our own
    failures are warnings with the internal detail; the client's at INFO. The detail is quoted
    and cut, so a client cannot forge log lines or flood them."""
    ours = isinstance(exc, CAError) and not exc.peer_caused
    detail = exc.detail if isinstance(exc, CAError) else problem.detail
    where = f"{request.method} {request.path[:100]} from {request.remote or '?'}" if request else "request"
    outcome = "failed on our side" if ours else "refused"
    log.log(
        logging.WARNING if ours else logging.INFO,
        "ACME %s %s: %s %d %r",
        where,
        outcome,
        problem.type,
        problem.status,
        detail[:MAX_LOGGED_DETAIL],
    )


class AcmeContext:
    """Built once per server process. The core is reached only through `CoreApi`; ACME's own
    state through one store per resource (accounts, orders, authzs, nonce_store, renewals),
    all on the core's `state` transactions. `nonces` is the in-memory pool in front of nonce_store."""

    def __init__(
        self,
        core: CoreApi,
        config: AcmeConfig,
        base_url: str,
        default_profile: str,
        config_dir: Path | None = None,
    ) -> None:
        self.core = core
        self.config = config
        self.clock = core.clock
        self.urls = Urls(base_url)
        self.accounts = AccountStore(core.state)
        self.orders = OrderStore(core.state)
        self.authzs = AuthzStore(core.state)
        self.nonce_store = NonceStore(core.state)
        self.renewals = RenewNowStore(core.state)
        announce(config.chaos)
        self.nonces = NonceService(
            self.nonce_store,
            self.clock,
            lifetime=config.nonce_lifetime,
            pool=config.nonce_pool,
            cap=config.max_nonces,
            chaos_reject=config.chaos.reject_nonce_fraction,
        )
        self.va = ValidationAuthority(config.validation, config.caa_identities, config.chaos)
        self.limiter = RateLimiter(config.rate_limits, self.clock, core.state)
        self.refusals = RefusalLimiter(config.rate_limits.refusals_per_minute, self.clock)
        self._jwks: OrderedDict[str, Jwk] = OrderedDict()
        self._accounts: OrderedDict[int, Account] = OrderedDict()
        self.default_profile = self._pick_default(default_profile)
        self._alternates = self._load_alternates(config_dir or Path.cwd())

    # -- profiles -------------------------------------------------------------------------
    def acme_profiles(self) -> dict[str, Profile]:
        """Profiles that get a directory: ACME among their protocols, ACME accounts accepted."""
        return {
            name: p
            for name, p in self.core.profiles.items()
            if "acme" in p.protocols and AuthMethod.ACME_ACCOUNT in p.auth_methods
        }

    def _pick_default(self, server_default: str) -> str:
        profiles = self.acme_profiles()
        wanted = self.config.default_profile or server_default
        if wanted in profiles:
            return wanted
        if self.config.default_profile:
            raise ConfigError(f"acme.default_profile: profile {wanted!r} does not allow ACME")
        if not profiles:
            raise ConfigError("acme: no profile lists 'acme' among its protocols")
        return sorted(profiles)[0]

    def offered(self, directory: str | None) -> tuple[str, ...]:
        """The profiles a directory offers (the ACME `profile` field picks among them)."""
        profiles = self.acme_profiles()
        if directory is None:
            return tuple(sorted(profiles))
        return (directory,) if directory in profiles else ()

    def directory_profile(self, directory: str | None) -> str:
        return directory or self.default_profile

    # -- keys and chains ---------------------------------------------------------------------
    def account_jwk(self, account: Account) -> Jwk:
        jwk = self._jwks.get(account.jwk)
        if jwk is None:
            jwk = parse_jwk(json.loads(account.jwk))
            self._jwks[account.jwk] = jwk
            if len(self._jwks) > JWK_CACHE_SIZE:
                self._jwks.popitem(last=False)
        return jwk

    def cached_account(self, account_id: int) -> Account | None:
        """The last copy this process read: only used to pick the key to verify a JWS with."""
        return self._accounts.get(account_id)

    def remember_account(self, account: Account) -> None:
        self._accounts[account.id] = account
        self._accounts.move_to_end(account.id)
        if len(self._accounts) > JWK_CACHE_SIZE:
            self._accounts.popitem(last=False)

    def _load_alternates(self, base: Path) -> dict[str, list[tuple[x509.Certificate, ...]]]:
        out: dict[str, list[tuple[x509.Certificate, ...]]] = {}
        for issuer, files in self.config.alternate_chains.items():
            if issuer not in self.core.issuer_names:
                raise ConfigError(f"acme.alternate_chains: no issuer named {issuer!r}")
            for name in files:
                path = Path(name) if Path(name).is_absolute() else base / name
                try:
                    chain = tuple(x509.load_pem_x509_certificates(path.read_bytes()))
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"acme.alternate_chains.{issuer}: cannot read {path}: {exc}") from None
                out.setdefault(issuer, []).append(chain)
        return out

    def chains(self, issuer: str) -> list[tuple[x509.Certificate, ...]]:
        """The default chain first, then the alternates served through Link rel="alternate": the
        configured ones, then those to the other root of a root rollover (from the core)."""
        return [self.core.chain(issuer), *self._alternates.get(issuer, []), *self.core.alternate_chains(issuer)]

    # -- responses -----------------------------------------------------------------------
    def index_link(self, directory: str | None = None) -> str:
        return f'<{self.urls.directory(directory)}>;rel="index"'

    async def fresh_nonce_headers(self) -> dict[str, str]:
        """Replay-Nonce for a reply; empty if the store cannot make one (the reply still goes out)."""
        try:
            return {"Replay-Nonce": await self.nonces.new()}
        except CAError as exc:
            log.warning("cannot issue a nonce: %s", exc.detail)
            return {}

    async def reply(self, reply: Reply, *, nonce: bool = True) -> WireResponse:
        headers: dict[str, str] = {"Cache-Control": "no-store"}
        if nonce:
            headers.update(await self.fresh_nonce_headers())
        links = [self.index_link(), *reply.links]
        headers["Link"] = ", ".join(links)
        if reply.location:
            headers["Location"] = reply.location
        if reply.retry_after is not None:
            headers["Retry-After"] = str(reply.retry_after)
        body = b""
        if isinstance(reply.body, dict):
            body = dumps(reply.body)
            headers["Content-Type"] = reply.content_type
        elif isinstance(reply.body, bytes):
            body = reply.body
            headers["Content-Type"] = reply.content_type
        return WireResponse(reply.status, headers, body)

    async def problem(
        self, exc: AcmeProblem | CAError, *, nonce: bool = True, request: WireRequest | None = None
    ) -> WireResponse:
        problem = exc if isinstance(exc, AcmeProblem) else problem_from_ca_error(exc)
        log_refusal(problem, exc, request)
        if request is not None:
            self.count_refusal(request)
        headers: Mapping[str, str] = {"Link": self.index_link()}
        if nonce:
            headers = {**headers, **(await self.fresh_nonce_headers())}
        return render_problem(problem, headers)

    def count_refusal(self, request: WireRequest) -> None:
        """One more refused request from this source (LOAD-05); logged once when it tips over."""
        if self.refusals.refused(request.remote):
            log.warning(
                "ACME requests from %s are refused unread for a while: over %d refused requests a minute",
                address_key(request.remote),
                self.config.rate_limits.refusals_per_minute,
            )

    def blocked(self, request: WireRequest) -> WireResponse | None:
        """429 before any work for a source that keeps being refused (LOAD-05). Not logged one by
        one (the block was, once) and without a nonce: a flood must cost next to nothing."""
        wait = self.refusals.retry_after(request.remote)
        if wait is None:
            return None
        problem = AcmeProblem("rateLimited", "too many refused requests from this address", 429, retry_after=wait)
        return render_problem(problem, {"Link": self.index_link()})

    async def close(self) -> None:
        await self.nonces.close()
        await self.limiter.close()
