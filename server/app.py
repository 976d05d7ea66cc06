"""build_app(config) -> web.Application, and serve(): both listeners, SIGHUP reload (profiles, TLS), clean shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import uvloop
from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography.hazmat.primitives.serialization import Encoding

from ca.activity import Event, log_event, request_scope
from ca.clock import Clock
from ca.errors import ConfigError
from ca.profiles.loader import load_profiles
from ca.service import CertificateAuthority
from ca.store.migrate import require_current
from protocols.base import ProtocolSpec, RevocationServices, WireResponse
from protocols.registry import PROTOCOLS
from server.config import ServerConfig, load_config
from server.failures import FAILURES, UnexpectedFailures
from server.http import last_resort, to_aiohttp, to_wire
from server.limits import BoundedSite, ListenerGuard, bounded_handlers
from server.logs import setup_logging
from server.manage.api import ENDPOINTS as MANAGE_ENDPOINTS
from server.manage.gate import management_gate
from server.manage.router import PREFIX as MANAGE_PREFIX
from server.manage.router import manage_app
from server.manage.settings import MANAGE_LISTENER
from server.manage.ui import UI_PREFIX, ui_app
from server.metrics import Metrics
from server.plain_http import MAX_HEAD, PlainListener
from server.protocol_jobs import ProtocolJobs
from server.readiness import readiness_checks
from server.requestlog import ACCESS, AccessLog, FastPathAccess, request_ids
from server.tls import load_certificate, server_context
from server.wiring import build_ca, build_revocation, protocol_context

log = logging.getLogger("tetra.server")
OCSP = PROTOCOLS["ocsp"]

CONFIG = web.AppKey("config", ServerConfig)
CA = web.AppKey("ca", CertificateAuthority)
METRICS = web.AppKey("metrics", Metrics)
HANDLERS = web.AppKey("protocol_handlers", dict)
REVOCATION = web.AppKey("revocation", RevocationServices)


def _protocol_app(spec: ProtocolSpec, prefix: str) -> web.Application:
    """The sub-application serving ``spec``'s routes under ``prefix`` (its own, or an alias)."""
    middlewares = [_worded_by(spec.http_error)] if spec.http_error is not None else []
    sub = web.Application(client_max_size=spec.max_body, middlewares=middlewares)

    def make(route_handler: str) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            handlers = request.config_dict[HANDLERS][spec.name]
            metrics = request.config_dict[METRICS]
            path = request.path[len(prefix) :] or "/"
            wire = await to_wire(request, path, spec.max_body)
            with request_scope(protocol=spec.name):  # events carry the protocol (ca/activity.py)
                try:
                    response = await getattr(handlers, route_handler)(wire)
                except Exception as exc:  # a bug this request reached: DOS-15, server/failures.py
                    response = request.config_dict[FAILURES].answer(spec, handlers, wire, exc)
            metrics.requests.labels(spec.name, request.method, str(response.status)).inc()
            return to_aiohttp(response)

        return handle

    for route in spec.routes:
        sub.router.add_route(route.method, route.path, make(route.handler_name))
    return sub


def _worded_by(http_error: Callable[[int, str], WireResponse]) -> Any:
    """Errors aiohttp raises under a protocol's prefix (404, 405, 413), in the protocol's words."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status not in (404, 405, 413):
                raise
            worded = http_error(exc.status, exc.reason)
            response = to_aiohttp(worded)
            if "Allow" in exc.headers:  # 405 says which methods would do
                response.headers["Allow"] = exc.headers["Allow"]
            return response

    return middleware


async def roots_pem(request: web.Request) -> web.Response:
    ca = request.app[CA]
    body = b"".join(c.public_bytes(Encoding.PEM) for c in ca.roots)
    return web.Response(body=body, content_type="application/pem-certificate-chain")


async def intermediates_pem(request: web.Request) -> web.Response:
    ca = request.app[CA]
    body = b"".join(c.public_bytes(Encoding.PEM) for c in ca.intermediates())
    return web.Response(body=body, content_type="application/pem-certificate-chain")


async def issuer_der(request: web.Request) -> web.Response:
    """caIssuers URL of every leaf: the issuing CA certificate in DER (RFC 5280 §4.2.2.1)."""
    ca = request.app[CA]
    certificate = ca.ca_certificate(request.match_info["issuer"])
    if certificate is None:
        raise web.HTTPNotFound(text="unknown issuer\n")
    return web.Response(body=certificate.public_bytes(Encoding.DER), content_type="application/pkix-cert")


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready when the store takes a durable write and an audit row, and every signer can sign now."""
    checks = await readiness_checks(request.app[CA])
    ok = all(v == "ok" for v in checks.values())
    return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def build_app(config: ServerConfig, *, clock: Clock | None = None, worker: int = 0) -> web.Application:
    """The whole server as one aiohttp app; `worker` is this process's index among the
    `workers` forked by serve(), part of its stable lease holder name (server/lease_identity.py)."""
    # The management gate first: /api/v1 and /ui/ answer only on the listeners [manage] names.
    gate = management_gate(config.manage)
    app = web.Application(middlewares=[gate, request_ids, last_resort], client_max_size=1024 * 1024)
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[FAILURES] = UnexpectedFailures(app[METRICS])
    app[HANDLERS] = {}

    async def core(app: web.Application) -> AsyncIterator[None]:
        ca = await build_ca(config, clock=clock)
        jobs = ProtocolJobs(())
        try:
            await require_current(ca.db)
            if any(p.lint == "pkilint" for p in ca.profiles.values()):
                # Build pkilint's validators before serving, so the first issuance does not pay ~0.3 s.
                from ca.lint import warm_up

                await asyncio.get_running_loop().run_in_executor(None, warm_up)
            ca.issuance_observers.append(app[METRICS].observe_issuance)
            ca.revocation_observers.append(lambda rec: app[METRICS].revoked.labels(rec.issuer).inc())
            app[CA] = ca
            app[REVOCATION] = build_revocation(ca, config)
            for name in config.protocols:
                spec = PROTOCOLS[name]
                app[HANDLERS][name] = spec.factory(protocol_context(name, ca, config, app[REVOCATION]))
            jobs = ProtocolJobs(job for name, h in app[HANDLERS].items() for job in PROTOCOLS[name].jobs(h))
            jobs.start()
            yield
        finally:
            await jobs.stop()
            for handler in app[HANDLERS].values():
                await handler.close()
            ocsp = app[REVOCATION].ocsp if REVOCATION in app else None
            if ocsp is not None:
                await ocsp.close()
            await ca.close()

    app.cleanup_ctx.append(core)

    # Revocation jobs (OCSP feed and pre-signing, CRL publication, leader lease): server/jobs.py.
    async def revocation_jobs(app: web.Application) -> AsyncIterator[None]:
        from server.jobs import start_jobs

        jobs = await start_jobs(app[CA], config, app[REVOCATION], worker=worker)
        try:
            yield
        finally:
            await jobs.stop()

    app.cleanup_ctx.append(revocation_jobs)

    # Inventory mirror, scheduled discovery scans, notifications: server/lifecycle_jobs.py.
    async def lifecycle_jobs(app: web.Application) -> AsyncIterator[None]:
        from server.lifecycle_jobs import LifecycleJobs

        jobs = LifecycleJobs(app[CA], config, worker=worker)
        jobs.start()
        try:
            yield
        finally:
            await jobs.stop()

    app.cleanup_ctx.append(lifecycle_jobs)

    # Scans started through the management API run in the background: stopped before the CA closes.
    async def api_scans(app: web.Application) -> AsyncIterator[None]:
        from server.manage.actions.discovery import stop_scans

        yield
        await stop_scans(app[CA])

    app.cleanup_ctx.append(api_scans)
    app.router.add_get("/roots.pem", roots_pem)
    app.router.add_get("/intermediates.pem", intermediates_pem)
    app.router.add_get("/ca/{issuer}.cer", issuer_der)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
    for name in config.protocols:
        spec = PROTOCOLS[name]
        for prefix in spec.mounts:
            app.add_subapp(prefix, _protocol_app(spec, prefix))
    if config.manage.enabled:
        app.add_subapp(MANAGE_PREFIX, manage_app(MANAGE_ENDPOINTS, config.manage, CA, METRICS, CONFIG))
        app.add_subapp(UI_PREFIX, ui_app(CA, CONFIG))  # the dashboard (docs/dashboard.md)
    return app


def endpoint_lines(config: ServerConfig) -> list[str]:
    lines = []
    for base in (config.http_url, config.https_url):
        if not base:
            continue
        lines += [
            f"  {base}/roots.pem",
            f"  {base}/intermediates.pem",
            f"  {base}/healthz",
            f"  {base}/readyz",
            f"  {base}/metrics",
        ]
        for name in config.protocols:
            lines.append(f"  {base}{PROTOCOLS[name].prefix}/  ({name})")
    if config.manage.listen is not None:
        lines.append(f"  {manage_url(config)}{MANAGE_PREFIX}/  (management API, manage listener)")
        lines.append(f"  {manage_url(config)}{UI_PREFIX}/  (dashboard, manage listener)")
    for name in config.manage.also_on:
        base = config.http_url if name == "http" else config.https_url
        lines.append(f"  {base}{MANAGE_PREFIX}/  (management API, also on the {name} listener)")
    return lines


def manage_url(config: ServerConfig) -> str:
    """The manage listener's base URL: HTTPS with the server's certificate when [server] https is set."""
    assert config.manage.listen is not None
    host, port = config.manage.listen
    shown = f"[{host}]" if ":" in host else host
    return f"{'https' if config.https else 'http'}://{shown}:{port}"


async def run_server(config: ServerConfig, stop: asyncio.Event | None = None, *, worker: int = 0) -> None:
    log_event(Event.SERVER_STARTING, pid=os.getpid(), worker=worker, config=str(config.source))
    app = build_app(config, worker=worker)
    # The access log (server/requestlog.py) only when asked for: off, aiohttp does not even time requests.
    # A request line up to the fast path's MAX_HEAD: a SCEP PKIOperation by GET carries the whole
    # message in its query (RFC 8894 §4.1), over aiohttp's default 8190 bytes with a big key.
    runner = web.AppRunner(
        app,
        access_log=ACCESS if config.access_log else None,
        access_log_class=AccessLog,
        max_line_size=MAX_HEAD,
    )
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    shared = config.workers > 1  # sibling processes bind the same ports (SO_REUSEPORT)
    plain: PlainListener | None = None
    tls: ssl.SSLContext | None = None  # the HTTPS listener's, its certificate reloaded on SIGHUP
    refused = app[METRICS].refused
    try:
        # Every listener bounds its clients (server/limits.py): timeouts, connections per address.
        sites = []
        if config.http and runner.server is not None and "ocsp" in app[HANDLERS] and "http" in OCSP.listeners:
            # OCSP on its lean path; the listener hands every other request to aiohttp (server/plain_http.py).
            guard = ListenerGuard("http", config.limits, refused)
            aiohttp_protocol = bounded_handlers(runner.server, guard)
            plain = PlainListener(
                app[HANDLERS]["ocsp"],
                aiohttp_protocol,
                app[METRICS],
                guard,
                app[FAILURES],
                max_body=OCSP.max_body,
                access=FastPathAccess() if config.access_log else None,
            )
            listening = plain.start(config.http.host, config.http.port, reuse_port=shared)
            await _listen("http", config.http.host, config.http.port, listening)
        elif config.http:
            guard = ListenerGuard("http", config.limits, refused)
            site = BoundedSite(runner, config.http.host, config.http.port, guard, reuse_port=shared)
            sites.append(("http", config.http.host, config.http.port, site))
        if config.https:
            guard = ListenerGuard("https", config.limits, refused)
            tls = server_context(config, app[CA])
            site = BoundedSite(runner, config.https.host, config.https.port, guard, ssl_context=tls, reuse_port=shared)
            sites.append(("https", config.https.host, config.https.port, site))
        if config.manage.listen is not None:
            # The management plane's own listener (server/manage/gate.py): TLS as the HTTPS one's.
            host, port = config.manage.listen
            guard = ListenerGuard(MANAGE_LISTENER, config.limits, refused)
            site = BoundedSite(runner, host, port, guard, ssl_context=tls, reuse_port=shared)
            sites.append((MANAGE_LISTENER, host, port, site))
        for name, host, port, listener in sites:
            await _listen(name, host, port, listener.start())
        # What start-up loaded (the pre-signed OCSP cache above all) lives as long as the process:
        # out of the collector's full passes, each of which stops the loop for ~0.2 s per
        # 100,000 cached answers. Collect first so no garbage is frozen with it.
        gc.collect()
        gc.freeze()

        def reload() -> None:
            """SIGHUP (systemd's ExecReload): the profiles, and the HTTPS listener's certificate."""
            try:
                app[CA].reload_profiles(load_profiles(config.profiles_dir))
                log.info("profiles reloaded from %s", config.profiles_dir)
            except Exception as exc:  # keep serving with the old profiles
                log.error("profile reload failed, keeping the old profiles: %s", exc)
            if tls is not None:
                try:
                    load_certificate(tls, config)
                    log.info("TLS certificate reloaded from %s", config.tls_certificate)
                except ConfigError as exc:  # keep serving with the old certificate
                    log.error("TLS certificate reload failed, keeping the old one: %s", exc)

        def stop_on(signum: signal.Signals) -> None:
            log_event(Event.SERVER_STOPPING, pid=os.getpid(), worker=worker, signal=signum.name)
            stop.set()

        loop.add_signal_handler(signal.SIGHUP, reload)
        loop.add_signal_handler(signal.SIGTERM, stop_on, signal.SIGTERM)
        loop.add_signal_handler(signal.SIGINT, stop_on, signal.SIGINT)
        print("Tetra is serving:\n" + "\n".join(endpoint_lines(config)), flush=True)
        log_event(Event.SERVER_SERVING, pid=os.getpid(), worker=worker, listeners=_addresses(config))
        await stop.wait()
    finally:
        if plain is not None:
            await plain.stop()
        await runner.cleanup()
    log_event(Event.SERVER_STOPPED, pid=os.getpid(), worker=worker)


async def _listen(name: str, host: str, port: int, start: Awaitable[None]) -> None:
    """Start one listener; a port in use or not ours to bind is the operator's one-line error."""
    try:
        await start
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)  # asyncio's text repeats the address
        raise ConfigError(f"cannot listen on {host}:{port} ({name}): {reason}") from None


def _addresses(config: ServerConfig) -> list[str]:
    listeners = [f"{kind}:{a.host}:{a.port}" for kind, a in (("http", config.http), ("https", config.https)) if a]
    if config.manage.listen is not None:
        listeners.append(f"{MANAGE_LISTENER}:{config.manage.listen[0]}:{config.manage.listen[1]}")
    return listeners


def _run(config: ServerConfig, worker: int = 0) -> None:
    """Run one server process on uvloop: its libuv loop and transports cost a fraction of the
    pure-Python loop's per-request overhead, which every protocol's hot path pays."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(run_server(config, worker=worker))


def serve(config: ServerConfig) -> None:
    # SIGHUP means "reload" (systemd's ExecReload), never "die": until a worker's loop installs
    # its reload handler, and in the supervisor until its relay is set, one is ignored. Its
    # default action killed a worker still starting, and so the whole server.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    setup_logging(config.log_format, config.log_level)
    if config.workers <= 1:
        _run(config)
        return
    _supervise(config)


def _supervise(config: ServerConfig) -> None:
    """Fork `workers` processes that each run the whole app on the same ports (SO_REUSEPORT;
    the kernel spreads connections). All shared state (nonces, orders, audit chain) is in the
    database, so any process can answer any request. The parent only relays signals and
    stops everything when one worker dies."""
    children: list[int] = []
    for worker in range(config.workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                _run(config, worker)
            except BaseException:
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children.append(pid)
    log.info("supervising %d workers: %s", len(children), children)

    def relay(signum: int, _frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, relay)
    status = 0
    alive = set(children)
    while alive:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        alive.discard(pid)
        if code != 0:
            status = 1
        if alive:  # one worker ended: stop the others so a supervisor can restart the whole server
            for child in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signal.SIGTERM)
    if status:
        raise SystemExit(status)


__all__ = ["build_app", "load_config", "run_server", "serve"]
