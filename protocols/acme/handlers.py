"""The ACME routes: one method per endpoint, each turning every failure into a problem document."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ca.digits import parse_decimal
from ca.errors import CAError
from protocols.acme import accounts, authorizations, certificates, finalize, orders
from protocols.acme.auth import Signed, authenticate
from protocols.acme.config import AcmeConfig
from protocols.acme.context import AcmeContext, Reply
from protocols.acme.errors import AcmeProblem, not_found
from protocols.acme.methods import post_required
from protocols.acme.store.authorizations import load_authz
from protocols.acme.store.nonces import Loader
from protocols.acme.store.orders import load_certificate, load_order_with_authzs
from protocols.acme.sweeper import StuckChallengeSweeper, StuckOrderSweeper
from protocols.base import BackgroundJob, ProtocolContext, Route, WireRequest, WireResponse

log = logging.getLogger("tetra.acme")

ROUTES = (
    Route("GET", "/directory", "directory"),
    Route("HEAD", "/new-nonce", "new_nonce"),
    Route("GET", "/new-nonce", "new_nonce"),
    Route("POST", "/new-account", "new_account"),
    Route("POST", "/new-order", "new_order"),
    Route("POST", "/new-authz", "new_authz"),
    Route("POST", "/revoke-cert", "revoke_cert"),
    Route("POST", "/key-change", "key_change"),
    Route("GET", "/renewal-info/{cert_id}", "renewal_info"),
    Route("POST", "/acct/{id}", "account"),
    Route("POST", "/acct/{id}/orders", "account_orders"),
    Route("POST", "/order/{id}", "order"),
    Route("POST", "/order/{id}/finalize", "finalize"),
    Route("POST", "/authz/{id}", "authz"),
    Route("POST", "/chall/{id}", "challenge"),
    Route("POST", "/cert/{id}", "certificate"),
    Route("POST", "/cert/{id}/{alt}", "certificate"),
    # Per-profile directories (/acme/<profile>/directory) and their profile-bound endpoints.
    Route("GET", "/{profile}/directory", "directory"),
    Route("POST", "/{profile}/new-account", "new_account"),
    Route("POST", "/{profile}/new-order", "new_order"),
    Route("POST", "/{profile}/new-authz", "new_authz"),
)

Work = Callable[[], Awaitable[Reply]]
P = TypeVar("P")
# An endpoint's work once its request is authenticated (protocols/acme/accounts.py, orders.py...):
# it gets the resource id or the directory's profile.
Serve = Callable[[AcmeContext, Signed, P], Awaitable[Reply]]


def _int(req: WireRequest, key: str) -> int:
    value = parse_decimal(req.match.get(key, ""))
    if value is None:
        raise not_found()
    return value


def _maybe_int(req: WireRequest, key: str) -> int | None:
    return parse_decimal(req.match.get(key, ""))


class AcmeHandlers:
    def __init__(self, ctx: AcmeContext) -> None:
        self.ctx = ctx
        self.validations = authorizations.Validations()
        self.sweeper = StuckOrderSweeper(ctx)
        self.challenge_sweeper = StuckChallengeSweeper(ctx, self.validations)

    @classmethod
    def create(cls, context: ProtocolContext[AcmeConfig]) -> AcmeHandlers:
        base = (context.https_url or context.http_url).rstrip("/") + "/acme"
        ctx = AcmeContext(context.core, context.config, base, context.default_profile, context.config_dir)
        return cls(ctx)

    def jobs(self) -> tuple[BackgroundJob, ...]:
        return (
            BackgroundJob("acme-stuck-orders", self.sweeper.interval, self.sweeper.sweep_and_log),
            BackgroundJob(
                "acme-stuck-challenges", self.challenge_sweeper.interval, self.challenge_sweeper.sweep_and_log
            ),
        )

    async def close(self) -> None:
        await self.validations.close()
        await self.ctx.close()

    def count_refusal(self, req: WireRequest) -> None:
        """A request the server refused for us (its handler failed unexpectedly) counts against
        its source like any refusal (ProtocolSpec.count_refusal, DOS-15)."""
        self.ctx.count_refusal(req)

    # -- plumbing ---------------------------------------------------------------------------
    async def _run(self, req: WireRequest, work: Work, *, nonce: bool = True) -> WireResponse:
        if (blocked := self.ctx.blocked(req)) is not None:
            return blocked
        try:
            return await self.ctx.reply(await work(), nonce=nonce)
        except (AcmeProblem, CAError) as exc:
            return await self.ctx.problem(exc, nonce=nonce, request=req)

    async def _resource(
        self, req: WireRequest, serve: Serve[int], load: Callable[[int], Loader] | None = None
    ) -> WireResponse:
        """A POST(-as-GET) to a resource URL that ends in its {id}. With ``load``, the resource is read
        in the transaction that spends the nonce (one round trip) and reaches ``serve`` as
        ``Signed.loaded``; an id that is no number is refused (404) once the request verified."""

        async def work() -> Reply:
            ident = _maybe_int(req, "id")
            signed = await authenticate(self.ctx, req, load=None if ident is None or load is None else load(ident))
            return await serve(self.ctx, signed, _int(req, "id"))

        return await self._run(req, work)

    async def _in_directory(self, req: WireRequest, serve: Serve[str | None]) -> WireResponse:
        """newOrder and newAuthz, under the default directory or a profile's: an unknown profile
        is refused (404) before the signature is looked at."""

        async def work() -> Reply:
            directory = self._directory_name(req)
            signed = await authenticate(self.ctx, req)
            return await serve(self.ctx, signed, directory)

        return await self._run(req, work)

    def _directory_name(self, req: WireRequest) -> str | None:
        name = req.match.get("profile")
        if name is not None and name not in self.ctx.acme_profiles():
            raise not_found(f"no ACME directory for profile {name!r}")
        return name

    # -- endpoints ------------------------------------------------------------------------
    async def directory(self, req: WireRequest) -> WireResponse:
        async def work() -> Reply:
            return Reply(200, self._directory_body(self._directory_name(req)))

        return await self._run(req, work, nonce=False)

    def _directory_body(self, name: str | None) -> dict[str, Any]:
        ctx, urls, cfg = self.ctx, self.ctx.urls, self.ctx.config
        profile = ctx.directory_profile(name)
        body: dict[str, Any] = {
            "newNonce": urls.new_nonce,
            "newAccount": urls.per_directory(name, "new-account"),
            "newOrder": urls.per_directory(name, "new-order"),
            "revokeCert": urls.revoke_cert,
            "keyChange": urls.key_change,
            "renewalInfo": urls.renewal_info,
        }
        if cfg.profile_settings(profile).pre_authorization:
            body["newAuthz"] = urls.per_directory(name, "new-authz")
        meta: dict[str, Any] = {
            "externalAccountRequired": cfg.eab_required(profile),
            "caaIdentities": list(cfg.caa_identities),
            "profiles": {p: ctx.core.profiles[p].description or p for p in ctx.offered(name)},
        }
        if cfg.terms_of_service:
            meta["termsOfService"] = cfg.terms_of_service
        if cfg.website:
            meta["website"] = cfg.website
        body["meta"] = meta
        return body

    async def new_nonce(self, req: WireRequest) -> WireResponse:
        async def work() -> Reply:
            # RFC 8555 §7.2: 200 for HEAD, 204 for GET.
            return Reply(200 if req.method == "HEAD" else 204)

        response = await self._run(req, work)
        if req.method == "HEAD" and response.status == 200:
            # Without a length the client cannot tell where this bodiless 200 ends and may drop
            # the keep-alive connection (a new TLS handshake per HEAD: ~4 ms instead of ~0.5 ms).
            response = WireResponse(response.status, {**response.headers, "Content-Length": "0"}, b"")
        return response

    async def new_account(self, req: WireRequest) -> WireResponse:
        async def work() -> Reply:
            directory = self._directory_name(req)
            signed = await authenticate(self.ctx, req, jwk="required")
            return await accounts.new_account(self.ctx, signed, directory, self.ctx.urls.base + req.path, req.remote)

        return await self._run(req, work)

    async def account(self, req: WireRequest) -> WireResponse:
        return await self._resource(req, accounts.account_resource)

    async def account_orders(self, req: WireRequest) -> WireResponse:
        return await self._resource(req, accounts.account_orders)

    async def key_change(self, req: WireRequest) -> WireResponse:
        async def work() -> Reply:
            signed = await authenticate(self.ctx, req)
            return await accounts.key_change(self.ctx, signed, self.ctx.urls.base + req.path)

        return await self._run(req, work)

    async def new_order(self, req: WireRequest) -> WireResponse:
        return await self._in_directory(req, orders.new_order)

    async def new_authz(self, req: WireRequest) -> WireResponse:
        return await self._in_directory(req, authorizations.new_authz)

    async def order(self, req: WireRequest) -> WireResponse:
        return await self._resource(req, orders.order_resource, load_order_with_authzs)

    async def finalize(self, req: WireRequest) -> WireResponse:
        return await self._resource(req, finalize.finalize, load_order_with_authzs)

    async def authz(self, req: WireRequest) -> WireResponse:
        return await self._resource(req, authorizations.authz_resource, load_authz)

    async def challenge(self, req: WireRequest) -> WireResponse:
        async def work() -> Reply:
            ident = _maybe_int(req, "id")
            signed = await authenticate(
                self.ctx,
                req,
                load_for=None if ident is None else authorizations.challenge_loader(self.ctx, ident),
            )
            return await authorizations.challenge_resource(self.ctx, signed, _int(req, "id"), self.validations)

        return await self._run(req, work)

    async def certificate(self, req: WireRequest) -> WireResponse:
        async def work() -> Reply:
            ident = _maybe_int(req, "id")
            signed = await authenticate(self.ctx, req, load=None if ident is None else load_certificate(ident))
            alt = _int(req, "alt") if "alt" in req.match else 0
            return await certificates.download(self.ctx, signed, _int(req, "id"), alt)

        return await self._run(req, work)

    async def revoke_cert(self, req: WireRequest) -> WireResponse:
        async def work() -> Reply:
            signed = await authenticate(self.ctx, req, jwk="allowed")
            return await certificates.revoke_cert(self.ctx, signed)

        return await self._run(req, work)

    async def renewal_info(self, req: WireRequest) -> WireResponse:
        async def work() -> Reply:
            return await certificates.renewal_info(self.ctx, req.match.get("cert_id", ""))

        return await self._run(req, work, nonce=False)

    async def post_required(self, req: WireRequest) -> WireResponse:
        """GET (or any method but POST) on a POST-as-GET resource: 405 problem (ACME-08)."""
        return self.ctx.blocked(req) or await self.ctx.problem(post_required(req.method), request=req)
