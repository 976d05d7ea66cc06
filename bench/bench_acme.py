"""ACME issuance benchmark: Tetra (real http-01 validation) against Pebble (always-valid), same run.

One load generator with pre-built account keys and CSRs drives complete issuances
(newOrder -> authorization -> challenge -> finalize -> download) at several
concurrencies; each server is started fresh for each run, and its CPU time is read
from /proc/<pid>/stat. Prints a markdown table.

    python bench/bench_acme.py [--seconds 10] [--concurrency 1 8 32 64] [--skip-pebble]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from protocols.acme.b64 import b64e  # noqa: E402
from protocols.acme.jwk import jwk_from_key, parse_jwk  # noqa: E402
from protocols.acme.jws import SigningKey, sign_jws  # noqa: E402
from tests.tetra_process import free_port  # noqa: E402
from tests.unit.protocols.acme.support import make_csr  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
REQUEST_TIMEOUT = 30.0
GRACE_SECONDS = 10.0  # an issuance still running this long after the window is an error (a stall)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, its reaped children and its live children (the workers of
    `tetra serve --workers N`), from /proc (seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICKS
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    for child in children:
        try:
            total += cpu_seconds(int(child))
        except (OSError, ValueError):
            pass  # exited meanwhile; its time lands in the parent's reaped-children counters
    return total


@dataclass
class Result:
    server: str
    concurrency: int
    done: int = 0
    errors: int = 0
    retries: int = 0
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu: float = 0.0
    first_error: str = ""


class Client:
    """A lean ACME client: one account, nonces reused from replies, badNonce retried."""

    def __init__(self, session: aiohttp.ClientSession, directory_url: str, result: Result) -> None:
        self.session = session
        self.directory_url = directory_url
        self.result = result
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.thumbprint = parse_jwk(jwk_from_key(self.key.public_key())).thumbprint
        self.kid: str | None = None
        self.nonces: list[str] = []
        self.directory: dict[str, Any] = {}

    async def setup(self) -> None:
        async with self.session.get(self.directory_url) as resp:
            self.directory = await resp.json(content_type=None)
        resp_status, headers, _ = await self.post(
            self.directory["newAccount"], {"termsOfServiceAgreed": True}, jwk=True
        )
        assert resp_status in (200, 201), resp_status
        self.kid = headers["Location"]

    async def nonce(self) -> str:
        if self.nonces:
            return self.nonces.pop()
        async with self.session.head(self.directory["newNonce"]) as resp:
            return resp.headers["Replay-Nonce"]

    async def post(self, url: str, payload: Any, *, jwk: bool = False) -> tuple[int, Any, bytes]:
        for _ in range(5):
            protected: dict[str, Any] = {"nonce": await self.nonce(), "url": url}
            if jwk:
                protected["jwk"] = jwk_from_key(self.key.public_key())
            else:
                protected["kid"] = self.kid
            raw = None if payload is None else json.dumps(payload).encode()
            body = sign_jws(self.key, raw, protected)
            async with self.session.post(
                url,
                data=body,
                headers={"Content-Type": "application/jose+json"},
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as resp:
                data = await resp.read()
                if "Replay-Nonce" in resp.headers:
                    self.nonces.append(resp.headers["Replay-Nonce"])
                if resp.status == 400 and b"badNonce" in data:
                    self.result.retries += 1
                    continue
                return resp.status, resp.headers, data
        raise RuntimeError("badNonce five times in a row")

    async def poll(self, url: str, done: tuple[str, ...]) -> dict[str, Any]:
        for _ in range(200):
            status, headers, data = await self.post(url, None)
            if status != 200:
                raise RuntimeError(f"poll {url}: HTTP {status} {data[:200]!r}")
            obj: dict[str, Any] = json.loads(data)
            if obj["status"] in done:
                return obj
            await asyncio.sleep(float(headers.get("Retry-After", "0") or 0) and 0.02)
        raise RuntimeError(f"{url} stuck")

    async def issue(self, name: str, csr_der: bytes, tokens: dict[str, str]) -> None:
        status, headers, data = await self.post(
            self.directory["newOrder"], {"identifiers": [{"type": "dns", "value": name}]}
        )
        if status != 201:
            raise RuntimeError(f"newOrder: HTTP {status} {data[:200]!r}")
        order, order_url = json.loads(data), headers["Location"]
        for authz_url in order["authorizations"]:
            status, _, data = await self.post(authz_url, None)
            authz = json.loads(data)
            chall = next(c for c in authz["challenges"] if c["type"] == "http-01")
            tokens[chall["token"]] = f"{chall['token']}.{self.thumbprint}"
            status, _, data = await self.post(chall["url"], {})
            if status != 200:
                raise RuntimeError(f"challenge: HTTP {status} {data[:200]!r}")
            if json.loads(data)["status"] != "valid":
                authz = await self.poll(authz_url, ("valid", "invalid"))
                if authz["status"] != "valid":
                    raise RuntimeError(f"authorization invalid: {authz}")
            tokens.pop(chall["token"], None)
        status, _, data = await self.post(order["finalize"], {"csr": b64e(csr_der)})
        if status != 200:
            raise RuntimeError(f"finalize: HTTP {status} {data[:200]!r}")
        order = json.loads(data)
        if order["status"] != "valid":
            order = await self.poll(order_url, ("valid", "invalid"))
        if order["status"] != "valid":
            raise RuntimeError(f"order invalid: {order}")
        status, _, data = await self.post(order["certificate"], None)
        if status != 200 or b"BEGIN CERTIFICATE" not in data:
            raise RuntimeError(f"download: HTTP {status}")


async def http01_responder(port: int, tokens: dict[str, str]) -> web.AppRunner:
    async def answer(request: web.Request) -> web.Response:
        value = tokens.get(request.match_info["token"])
        return web.Response(text=value) if value else web.Response(status=404)

    app = web.Application()
    app.router.add_get("/.well-known/acme-challenge/{token}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    import urllib.request

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, context=context, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def with_retries(start: Callable[[], tuple[subprocess.Popen[bytes], str]]) -> tuple[subprocess.Popen[bytes], str]:
    """Start a server, trying again (on new ports) if it exits during start-up: on a shared
    machine another process may take a port between free_port() and the server's bind."""
    for attempt in range(3):
        try:
            return start()
        except RuntimeError as exc:
            print(f"    server start failed ({exc}); attempt {attempt + 2} of 3", file=sys.stderr)
    return start()


def fresh_postgres(admin_url: str) -> str:
    """A new, empty PostgreSQL database for one run (the admin URL names the server)."""
    name = f"tetra_bench_{os.getpid()}_{int(time.time() * 1000)}"
    subprocess.run(["psql", admin_url, "-qc", f'CREATE DATABASE "{name}"'], check=True, capture_output=True)
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def start_tetra(
    work: Path,
    http01_port: int,
    dns_address: str,
    profile: str,
    db_mode: str,
    workers: int = 1,
    database_url: str = "",
    rate_limits: bool = False,
    prepare: Callable[[Path, dict[str, str]], None] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`prepare(ca_directory, env)`, if given, runs after `tetra init` and before `serve` (it may
    add issuers and profiles to the directory and variables to the environment)."""
    https = free_port()
    directory = work / f"tetra-{https}"
    tetra = str(Path(sys.executable).parent / "tetra")
    subprocess.run(
        [tetra, "init", "--dir", str(directory), "--http", f"127.0.0.1:{free_port()}", "--https", f"127.0.0.1:{https}"],
        check=True,
        capture_output=True,
    )
    if profile == "bench-nolint":
        text = (directory / "profiles" / "tls-server.toml").read_text().replace('lint = "pkilint"', 'lint = "none"')
        (directory / "profiles" / "bench-nolint.toml").write_text(text)
    env = {
        **os.environ,
        "TETRA_SERVER__PROTOCOLS": '["acme"]',
        "TETRA_ACME__VALIDATION__HTTP_PORT": str(http01_port),
        "TETRA_ACME__VALIDATION__RESOLVER": dns_address,
        # --rate-limits: every limit checked but far above what a run reaches (measures their cost).
        "TETRA_ACME__RATE_LIMITS__ORDERS_PER_ACCOUNT": "1000000000" if rate_limits else "0",
        "TETRA_ACME__RATE_LIMITS__ORDERS_PER_IDENTIFIER": "1000000000" if rate_limits else "0",
        "TETRA_ACME__RATE_LIMITS__ACCOUNTS_PER_IP": "1000000000" if rate_limits else "0",
        "TETRA_ACME__DEFAULT_PROFILE": profile,
        "TETRA_ACME__AUTHZ_REUSE": "0",
        "TETRA_DATABASE__MODE": db_mode,
        "TETRA_LOGGING__LEVEL": "warning",
        # Every load client connects from 127.0.0.1, with more connections than a real client
        # address should hold ([server] max_connections_per_address, 64 by default).
        "TETRA_SERVER__MAX_CONNECTIONS_PER_ADDRESS": "1000000",
    }
    if database_url:
        env["TETRA_DATABASE__URL"] = json.dumps(database_url)
        subprocess.run(
            [tetra, "db", "upgrade", "--config", str(directory / "tetra.toml")],
            env=env,
            check=True,
            capture_output=True,
        )
    if prepare is not None:
        prepare(directory, env)
    log = (work / "tetra.log").open("ab")
    proc = subprocess.Popen(
        [tetra, "serve", "--config", str(directory / "tetra.toml"), "--workers", str(workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    wait_http(f"https://127.0.0.1:{https}/healthz", proc)
    return proc, f"https://127.0.0.1:{https}/acme/directory"


def start_pebble(work: Path, http01_port: int) -> tuple[subprocess.Popen[bytes], str]:
    cert, key = work / "pebble.pem", work / "pebble.key"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
    port = free_port()
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{port}",
            "managementListenAddress": f"127.0.0.1:{free_port()}",
            "certificate": str(cert),
            "privateKey": str(key),
            "httpPort": http01_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (work / "pebble.json").write_text(json.dumps(config))
    env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_VA_ALWAYS_VALID": "1"}
    log = (work / "pebble.log").open("ab")
    proc = subprocess.Popen(
        ["pebble", "-config", str(work / "pebble.json")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    wait_http(f"https://127.0.0.1:{port}/dir", proc)
    return proc, f"https://127.0.0.1:{port}/dir"


def start_dns() -> tuple[subprocess.Popen[bytes], str]:
    """The loopback DNS in its own process, so it takes no CPU from the load generator's loop."""
    code = (
        f"import sys,time; sys.path.insert(0, {str(ROOT)!r})\nfrom interop.acme_helpers import LoopbackDns\n"
        "d = LoopbackDns().start(); print(d.port, flush=True); time.sleep(10**6)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"127.0.0.1:{port}"


def row(r: Result) -> str:
    lat = sorted(r.latencies)
    p50 = statistics.median(lat) * 1000 if lat else 0.0
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000 if lat else 0.0
    rate = r.done / r.seconds if r.seconds else 0.0
    per_cpu = r.done / r.cpu if r.cpu else 0.0
    return (
        f"| {r.server} | {r.concurrency} | {r.done} | {rate:.1f} | {p50:.0f} | {p99:.0f} | {r.cpu:.1f} | "
        f"{per_cpu:.1f} | {r.errors} | {r.retries} |"
    )


async def main_async(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-acme-"))
    # Pre-built CSRs, one distinct name each, enough that no name repeats within a run (no authz reuse).
    key = ec.generate_private_key(ec.SECP256R1())
    csrs = [make_csr([f"k{i}.bench.example.com"], key)[0].public_bytes(Encoding.DER) for i in range(args.pool)]
    servers = [s for s in args.servers if not (s == "pebble" and args.skip_pebble)]
    dns_proc, dns_address = start_dns()
    http01_port = free_port()
    tokens: dict[str, str] = {}
    responder = await http01_responder(http01_port, tokens)
    results: list[Result] = []
    try:
        for concurrency in args.concurrency:
            for server in servers:
                database_url = ""
                if server == "tetra":
                    database_url = fresh_postgres(args.pg_admin) if args.database == "postgres" else ""
                    proc, url = with_retries(
                        partial(
                            start_tetra,
                            work,
                            http01_port,
                            dns_address,
                            args.profile,
                            args.db_mode,
                            args.workers,
                            database_url,
                            args.rate_limits,
                        )
                    )
                else:
                    proc, url = with_retries(lambda: start_pebble(work, http01_port))
                try:
                    result = Result(server, concurrency)
                    pool = make_pool(csrs)
                    await drive_pool(result, url, proc.pid, args.seconds, pool, tokens)
                    results.append(result)
                    print(row(result), file=sys.stderr, flush=True)
                    if result.first_error:
                        print(f"    first error: {result.first_error}", file=sys.stderr)
                finally:
                    stop(proc)
                    if server == "tetra" and database_url:
                        name = database_url.rsplit("/", 1)[1]
                        subprocess.run(
                            ["psql", args.pg_admin, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                            capture_output=True,
                        )
    finally:
        await responder.cleanup()
        stop(dns_proc)
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nACME issuance, {args.seconds:g} s per run, Tetra profile {args.profile} with real http-01, "
        f"{args.workers} server process(es), {args.database} in database mode {args.db_mode}; "
        "Pebble with PEBBLE_VA_NOSLEEP=1 PEBBLE_VA_ALWAYS_VALID=1\n"
    )
    print(
        "| server | concurrency | certificates | certs/s | p50 ms | p99 ms | server CPU s | certs/CPU-s | errors "
        "| badNonce retries |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(row(r))


def make_pool(csrs: list[bytes]) -> list[tuple[str, bytes]]:
    return [(f"k{i}.bench.example.com", der) for i, der in enumerate(csrs)]


async def drive_pool(
    result: Result,
    url: str,
    pid: int,
    seconds: float,
    pool: list[tuple[str, bytes]],
    tokens: dict[str, str],
    probe: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Each worker issues back to back with names from the prebuilt CSR pool until the window closes.
    certs/s and CPU are taken over the window exactly; an issuance that hangs past the window's
    grace period is cancelled and counted as an error, so one stalled request cannot stretch the
    window (Pebble occasionally stalls a request). `probe`, if given, is awaited just before the
    window's first CPU reading and just after its last (bench_acme_floor.py reads server counters)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    connector = aiohttp.TCPConnector(limit=0, ssl=context)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients = [Client(session, url, result) for _ in range(result.concurrency)]
        # One account first: on a fresh PostgreSQL database, concurrent first audit events race to
        # create the audit chain's head row (ca/audit.py append_events; reported, not fixed here).
        await clients[0].setup()
        await asyncio.gather(*(c.setup() for c in clients[1:]))
        stop_at = time.monotonic() + seconds
        deadline = stop_at + GRACE_SECONDS
        counter = iter(range(10**9))

        async def worker(client: Client) -> None:
            while time.monotonic() < stop_at:
                name, der = pool[next(counter) % len(pool)]
                started = time.monotonic()
                try:
                    await asyncio.wait_for(client.issue(name, der, tokens), max(0.1, deadline - started))
                except Exception as exc:
                    result.errors += 1
                    if not result.first_error:
                        why = "still running after the window's grace period" if isinstance(exc, TimeoutError) else exc
                        result.first_error = f"{type(exc).__name__}: {why}"[:300]
                    continue
                finished = time.monotonic()
                if finished <= stop_at:  # the rate and latencies count what completed inside the window
                    result.latencies.append(finished - started)
                    result.done += 1

        async def window() -> None:
            await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
            result.cpu = cpu_seconds(pid) - cpu_before
            if probe is not None:
                await probe()

        if probe is not None:
            await probe()
        cpu_before = cpu_seconds(pid)
        begin = time.monotonic()
        await asyncio.gather(window(), *(worker(c) for c in clients))
        result.seconds = stop_at - begin


def jws_speed(rounds: int = 2000) -> None:
    """Verification cost per algorithm: parse + key lookup from cache + signature check (every request)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    from protocols.acme.jws import parse_jws, verify

    keys: dict[str, SigningKey] = {
        "ES256": ec.generate_private_key(ec.SECP256R1()),
        "ES384": ec.generate_private_key(ec.SECP384R1()),
        "RS256 (2048)": rsa.generate_private_key(65537, 2048),
        "EdDSA (Ed25519)": ed25519.Ed25519PrivateKey.generate(),
    }
    print("| JWS alg | verify µs (parse + verify) | verifications/s |")
    print("|---|---|---|")
    for name, key in keys.items():
        jwk = parse_jwk(jwk_from_key(key.public_key()))
        body = sign_jws(
            key,
            b'{"identifiers":[{"type":"dns","value":"a.example.com"}]}',
            {"nonce": "A" * 22, "url": "https://x/acme/new-order", "kid": "https://x/acme/acct/1"},
        )
        started = time.perf_counter()
        for _ in range(rounds):
            verify(parse_jws(body), jwk)
        per = (time.perf_counter() - started) / rounds
        print(f"| {name} | {per * 1e6:.0f} | {1 / per:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jws", action="store_true", help="only measure JWS verification speed per algorithm")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--profile", default="tls-server", help="tls-server (pkilint before signing) or bench-nolint")
    parser.add_argument("--skip-pebble", action="store_true")
    parser.add_argument("--servers", nargs="+", choices=["tetra", "pebble"], default=["tetra", "pebble"])
    parser.add_argument("--keep", action="store_true", help="keep the work directory (server logs) after the run")
    parser.add_argument("--db-mode", choices=["async", "thread"], default="thread", help="Tetra's database mode")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite", help="Tetra's database")
    parser.add_argument(
        "--pg-admin",
        default=os.environ.get("TETRA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="PostgreSQL server for --database postgres (a fresh database is created per run)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Tetra server processes (tetra serve --workers); more than 1 only pays with idle cores",
    )
    parser.add_argument("--pool", type=int, default=8000, help="distinct pre-built CSRs (names)")
    parser.add_argument("--rate-limits", action="store_true", help="keep ACME rate limits on (set very high)")
    args = parser.parse_args()
    if args.jws:
        jws_speed()
        return
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
