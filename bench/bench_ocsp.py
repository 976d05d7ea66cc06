"""OCSP benchmark: responses per second from `tetra serve` and from `openssl ocsp` as a
responder (-index), over the same certificates, the same responder key type, one load
generator, in the same run.

    python bench/bench_ocsp.py [--certs 100000] [--keys ec-p256,rsa-2048] [--modes post,get,nonce]
                               [--concurrency 1,8,64] [--seconds 5] [--warmup 1] [--output FILE]

Setup (not timed): a fresh demo CA; `--certs` certificate rows inserted straight into the
store (serials random, status issued; OCSP only needs serials) and, for OpenSSL, an
index.txt with the same serials. Tetra's responses are pre-signed once before the run
(timed separately: the pre-signing rate); OpenSSL signs every response. Both responders
use a delegated responder certificate with the key type under test.

Modes: post (RFC 6960 POST), get (RFC 6960 A.1 GET, base64 in the path), nonce (POST with
a 16-octet nonce: Tetra signs each one fresh, with its rate limit off). Each request names
a random known serial (SHA-1 CertID); a sample of answers is parsed and checked (status
good, nonce echoed). The load generator is wrk (bench/loadgen.py: a Lua script
cycles the pre-built requests, the same for both servers); before each cell a sample of 50
answers is checked by a small Python client. Tetra runs `--workers` `tetra serve` processes
(default 1); openssl is one process. On a 2-core machine the generator shares the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import os
import platform
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.x509 import ocsp  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402
from loadgen import LoadResult, check_sample, get_request, post_request, run_wrk  # noqa: E402

from ca.der import oid  # noqa: E402
from ca.keys import default_hash, generate_private_key  # noqa: E402
from ca.revocation import asn1  # noqa: E402
from ca.revocation.model import NONCE_OID  # noqa: E402
from ca.revocation.ocsp_store import CertRow  # noqa: E402
from ca.signers.software import load_encrypted_key  # noqa: E402

SHA1_ALG = asn1.seq(oid("1.3.14.3.2.26"), b"\x05\x00")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Fixture:
    directory: Path
    serials: list[int]
    name_hash: bytes
    key_hash: bytes
    issuer_pem: Path


def request_der(fx: Fixture, serial: int, nonce: bytes | None = None) -> bytes:
    cert_id = asn1.seq(SHA1_ALG, asn1.octet_string(fx.name_hash), asn1.octet_string(fx.key_hash), asn1.integer(serial))
    tbs = [asn1.seq(asn1.seq(cert_id))]
    if nonce is not None:
        ext = asn1.extension(oid(NONCE_OID), asn1.octet_string(nonce))
        tbs.append(asn1.explicit(2, asn1.seq(ext)))
    return asn1.seq(asn1.seq(*tbs))


def issued_rows(serials: list[int]) -> list[CertRow]:
    """The store rows of the fixture's certificates, all issued and valid for 90 days from now."""
    now = dt.datetime.now(dt.UTC)
    return [
        CertRow("issuing-ca", format(s, "x"), "issued", None, None, now, now + dt.timedelta(days=90)) for s in serials
    ]


async def make_fixture(workdir: Path, count: int) -> Fixture:

    from ca.revocation.asn1 import certificate_subject, public_key_bits
    from server.config import Listen
    from server.demo import init_demo
    from server.wiring import build_ca, read_config
    from tests.revocation_support import certificate_row, insert_rows

    directory = workdir / "ca"
    await init_demo(
        directory,
        http=Listen("127.0.0.1", 8080),
        https=Listen("127.0.0.1", 8443),
        hostnames=["localhost"],
        protocols=["ocsp"],
        http_url="http://pki.example.com",
    )
    ca = await build_ca(read_config(directory / "tetra.toml"))
    try:
        now = dt.datetime.now(dt.UTC)
        serials = [secrets.randbits(127) | (1 << 126) for _ in range(count)]
        rows = [certificate_row("issuing-ca", s, "issued", now=now, issued_at=now) for s in serials]
        await insert_rows(ca, rows, chunk_size=10_000)
        issuer = ca.issuers["issuing-ca"].certificate
        return Fixture(
            directory,
            serials,
            hashlib.sha1(certificate_subject(issuer)).digest(),
            hashlib.sha1(public_key_bits(issuer.public_key())).digest(),
            directory / "ca" / "issuing-ca.pem",
        )
    finally:
        await ca.close()


async def presign(fx: Fixture, key_type: str) -> float:
    """Pre-sign every certificate's SHA-1 response as a running server would; returns responses/s."""
    from ca.revocation.ocsp import OcspService
    from ca.revocation.pointers import install_pointers
    from ca.revocation.settings import CrlSettings, OcspSettings, ResponderKeySettings
    from server.wiring import build_ca, read_config

    ca = await build_ca(read_config(fx.directory / "tetra.toml"))
    settings = OcspSettings(
        key=ResponderKeySettings(key_type=key_type),
        presign_hashes=("sha1",),
        preload=False,
        refresh_batch=1000,
        cache_entries=10,
    )
    service = OcspService(ca, settings)
    try:
        await install_pointers(ca, CrlSettings())
        await service.start(preload=False)
        rows = issued_rows(fx.serials)
        started = time.perf_counter()
        done = await service.presign([(r, "sha1") for r in rows], cache_new=False)
        elapsed = time.perf_counter() - started
        assert done == len(rows), (done, len(rows))
        return done / elapsed
    finally:
        await service.close()
        await ca.close()


class Tetra:
    label = "Tetra"

    def __init__(self, fx: Fixture, key_type: str, log: Path, workers: int = 1) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "TETRA_SERVER__HTTP": f"127.0.0.1:{self.port}",
            "TETRA_SERVER__HTTPS": f"127.0.0.1:{free_port()}",
            "TETRA_SERVER__PROTOCOLS": '["ocsp"]',
            "TETRA_OCSP__FRESH_RATE": "0",  # measure signing, not the flood limit
            "TETRA_OCSP__PRESIGN_HASHES": '["sha1"]',
            "TETRA_OCSP__CACHE_ENTRIES": str(len(fx.serials) + 1000),
            "TETRA_OCSP__RESPONDER_KEY__KEY_TYPE": key_type,
            "TETRA_LOGGING__LEVEL": "warning",
            # Every load client connects from 127.0.0.1, with more connections than a real client
            # address should hold ([server] max_connections_per_address, 64 by default).
            "TETRA_SERVER__MAX_CONNECTIONS_PER_ADDRESS": "1000000",
        }
        self._log = log.open("wb")
        tetra = Path(sys.executable).parent / "tetra"
        self.proc = subprocess.Popen(
            [str(tetra), "serve", "--config", str(fx.directory / "tetra.toml"), "--workers", str(workers)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_http(f"http://127.0.0.1:{self.port}/healthz", self.proc, log)
        except BaseException:
            self.stop()  # never leave a server behind when it did not come up
            raise
        self.post_path, self.get_prefix = "/ocsp", "/ocsp/"

    def stop(self) -> None:
        stop(self.proc)
        self._log.close()


class OpenSSL:
    label = "openssl ocsp"

    def __init__(self, fx: Fixture, key_type: str, workdir: Path, log: Path) -> None:
        self.port = free_port()
        passphrase = (fx.directory / "secrets" / "passphrase").read_bytes().rstrip(b"\n")
        ca_key = load_encrypted_key(fx.directory / "keys" / "issuing-ca.key", passphrase)
        ca_cert = x509.load_pem_x509_certificate(fx.issuer_pem.read_bytes())
        key = generate_private_key(key_type)
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openssl bench responder")]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), False)
            .add_extension(x509.OCSPNoCheck(), False)
            .sign(ca_key, default_hash(ca_key.public_key()))
        )
        (workdir / "rsigner.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (workdir / "rkey.pem").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        expiry = (now + dt.timedelta(days=90)).strftime("%y%m%d%H%M%SZ")
        with (workdir / "index.txt").open("w") as index:
            for serial in fx.serials:
                text = format(serial, "X")
                index.write(f"V\t{expiry}\t\t{'0' * (len(text) % 2)}{text}\tunknown\t/CN=bench\n")
        (workdir / "index.txt.attr").write_text("unique_subject = no\n")  # every row says /CN=bench
        self._command = [
            "openssl",
            "ocsp",
            "-index",
            str(workdir / "index.txt"),
            "-CA",
            str(fx.issuer_pem),
            "-rsigner",
            str(workdir / "rsigner.pem"),
            "-rkey",
            str(workdir / "rkey.pem"),
            "-port",
            str(self.port),
            "-ndays",
            "7",
        ]
        self._log = log.open("wb")
        self._log_path = log
        self._probe = post_request("/", request_der(fx, fx.serials[0])).replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)
        self.post_path, self.get_prefix = "/", "/"
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(self._command, stdout=self._log, stderr=subprocess.STDOUT)
        # Ready when it answers a real request: a bare connect-and-close makes the OpenSSL 3.0
        # responder spin at 100% CPU without ever accepting again.
        deadline = time.monotonic() + 120  # it reads the whole index first
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"openssl ocsp exited: {self._log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
                    sock.sendall(self._probe)
                    if sock.recv(16).startswith(b"HTTP/"):
                        return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("openssl ocsp did not answer in 120 s")

    def restart(self) -> None:
        """Before each wrk run: wrk ends by closing connections it opened but did not use yet,
        which wedges this responder (the bug above); a fresh process does not carry that over."""
        stop(self.proc)
        self.start()

    def stop(self) -> None:
        stop(self.proc)
        self._log.close()


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} not ready after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def build_requests(
    fx: Fixture, server: Tetra | OpenSSL, mode: str, count: int
) -> tuple[list[bytes], list[bytes | None]]:
    rng = random.Random(7)
    chosen = [rng.choice(fx.serials) for _ in range(count)]
    out, nonces = [], []
    for serial in chosen:
        nonce = secrets.token_bytes(16) if mode == "nonce" else None
        der = request_der(fx, serial, nonce)
        if mode == "get":
            request = get_request(server.get_prefix + quote(base64.b64encode(der).decode(), safe=""))
        else:
            request = post_request(server.post_path, der)
        if isinstance(server, OpenSSL):  # it closes every connection anyway; speak its HTTP/1.0
            request = request.replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)
        out.append(request)
        nonces.append(nonce)
    return out, nonces


def checker(nonces: list[bytes | None]) -> Callable[[int, bytes], bool]:
    def check(index: int, body: bytes) -> bool:
        try:
            response = ocsp.load_der_ocsp_response(body)
            if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
                return False
            if response.certificate_status != ocsp.OCSPCertStatus.GOOD:
                return False
            wanted = nonces[index]
            if wanted is not None:
                return bool(response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == wanted)
            return True
        except Exception:
            return False

    return check


async def probe_get(server: OpenSSL, fx: Fixture) -> bool:
    """Whether this openssl answers GET. Plain HTTP/1.0, as its own client speaks: some
    HTTP/1.1 requests (urllib's) make the OpenSSL 3.0 responder spin instead of answering."""
    der = request_der(fx, fx.serials[0])
    request = f"GET /{quote(base64.b64encode(der).decode(), safe='')} HTTP/1.0\r\n\r\n".encode()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(request)
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        body = raw.partition(b"\r\n\r\n")[2]
        return ocsp.load_der_ocsp_response(body).response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    except (TimeoutError, OSError, ValueError):
        return False


def environment() -> str:
    openssl = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, {openssl}, "
        f"{platform.platform()}"
    )


async def main(args: argparse.Namespace) -> int:
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is not installed")
    lines = [
        "# OCSP responses per second",
        "",
        environment(),
        "",
        f"{args.certs:,} certificates; requests for random known serials (SHA-1 CertID); one load generator "
        f"(wrk, threads = min(concurrency, CPUs), keep-alive where the server allows; 50 answers per cell "
        f"parsed and checked); {args.seconds:g} s per cell after {args.warmup:g} s warm-up. "
        f"Tetra: {args.workers} `tetra serve` worker process(es); openssl: one process "
        "(it closes every connection, so its clients reconnect per request; restarted before each wrk run, "
        "which otherwise wedges it).",
        "",
    ]
    for key_type in args.keys.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-ocsp-") as tmp:
            workdir = Path(tmp)
            print(f"[{key_type}] setting up {args.certs:,} certificates...", file=sys.stderr)
            fx = await make_fixture(workdir, args.certs)
            rate = await presign(fx, key_type)
            print(f"[{key_type}] pre-signed at {rate:,.0f} responses/s", file=sys.stderr)
            rows: list[tuple[str, str, int, LoadResult]] = []
            servers: list[Tetra | OpenSSL] = []
            try:
                tetra = Tetra(fx, key_type, workdir / "tetra.log", args.workers)
                servers.append(tetra)
                openssl = OpenSSL(fx, key_type, workdir, workdir / "openssl.log")
                servers.append(openssl)
                openssl_get = await probe_get(openssl, fx)
                for mode in args.modes.split(","):
                    for server in (tetra, openssl):
                        if mode == "get" and isinstance(server, OpenSSL) and not openssl_get:
                            continue
                        requests, nonces = build_requests(fx, server, mode, args.requests)
                        for concurrency in [int(c) for c in args.concurrency.split(",")]:
                            print(f"[{key_type}] {server.label} {mode} c={concurrency}", file=sys.stderr)
                            restart = server.restart if isinstance(server, OpenSSL) else None
                            try:
                                if restart is not None:
                                    restart()
                                sample = await asyncio.wait_for(
                                    check_sample("127.0.0.1", server.port, requests, checker(nonces)), 60
                                )
                                result = await asyncio.to_thread(
                                    run_wrk,
                                    "127.0.0.1",
                                    server.port,
                                    requests,
                                    concurrency=concurrency,
                                    seconds=args.seconds,
                                    warmup=args.warmup,
                                    between_runs=restart,
                                )
                            except (RuntimeError, subprocess.TimeoutExpired, TimeoutError) as exc:
                                print(f"[{key_type}] {server.label} {mode} c={concurrency}: {exc}", file=sys.stderr)
                                continue
                            result.errors += sample.errors
                            result.bodies_checked = sample.bodies_checked
                            rows.append((server.label, mode, concurrency, result))
            finally:
                for server in servers:
                    server.stop()
            lines += table(key_type, rate, rows)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


def table(key_type: str, presign_rate: float, rows: list[tuple[str, str, int, LoadResult]]) -> list[str]:
    out = [
        f"## Responder key {key_type}",
        "",
        f"Tetra pre-signing (at issuance/refresh, not on the request path): {presign_rate:,.0f} responses/s",
        "",
        "| mode | concurrency | Tetra rps | openssl rps | Tetra / openssl | Tetra p50 / p99 ms | openssl p50 / p99 ms "
        "| errors (Tetra, openssl) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(label, mode, c): r for label, mode, c, r in rows}
    modes = list(dict.fromkeys(m for _, m, _, _ in rows))
    for mode in modes:
        for concurrency in sorted({c for _, m, c, _ in rows if m == mode}):
            ours = by_key.get(("Tetra", mode, concurrency))
            theirs = by_key.get(("openssl ocsp", mode, concurrency))
            if ours is None:
                continue
            ratio = f"{ours.rps / theirs.rps:.1f}x" if theirs and theirs.rps else "n/a"
            theirs_rps = f"{theirs.rps:,.0f}" if theirs else "n/a (no GET)"
            theirs_lat = f"{theirs.percentile(0.5) * 1e3:.2f} / {theirs.percentile(0.99) * 1e3:.2f}" if theirs else "-"
            out.append(
                f"| {mode} | {concurrency} | {ours.rps:,.0f} | {theirs_rps} | {ratio} | "
                f"{ours.percentile(0.5) * 1e3:.2f} / {ours.percentile(0.99) * 1e3:.2f} | {theirs_lat} | "
                f"{ours.errors}, {theirs.errors if theirs else '-'} |"
            )
    out.append("")
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--certs", type=int, default=100_000)
    p.add_argument("--keys", default="ec-p256,rsa-2048", help="responder key types")
    p.add_argument("--modes", default="post,get,nonce")
    p.add_argument("--concurrency", default="1,8,64")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--requests", type=int, default=20_000, help="distinct pre-built requests (cycled)")
    p.add_argument("--workers", type=int, default=1, help="tetra serve processes (SO_REUSEPORT)")
    p.add_argument("--output", type=Path, default=None)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
