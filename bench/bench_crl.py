"""CRL benchmark: generation time and size for 10,000, 100,000 and 1,000,000 revoked
certificates, Tetra (from the store, published) beside `openssl ca -gencrl` over an
index.txt of the same entries and the same CA key, in the same run; and how long a
revocation takes to reach the published CRL of a running server.

    python bench/bench_crl.py [--sizes 10000,100000,1000000] [--repeat 2] [--no-latency]
                              [--batch-delay 5] [--output FILE]

Tetra's time is CrlService.generate() for one issuer: read the revoked rows from the store
(SQLite, WAL), encode every entry, reserve the CRL number, lint the throwaway-key twin
(pkix, sampled), sign with the issuing CA's key, verify, store the DER and write it to a
publish directory. OpenSSL's is the `openssl ca -gencrl` process, which reads index.txt,
builds, signs and writes PEM. Both use the demo's P-256 issuing CA key. Row insertion and
index writing are not timed. Reasons cycle through keyCompromise, superseded, none
(unspecified) and cessationOfOperation.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

REASONS = ("keyCompromise", "superseded", None, "cessationOfOperation")
ISSUER = "issuing-ca"


async def make_ca(workdir: Path) -> Path:
    from server.config import Listen
    from server.demo import init_demo

    directory = workdir / "ca"
    await init_demo(
        directory,
        http=Listen("127.0.0.1", free_port()),
        https=Listen("127.0.0.1", free_port()),
        hostnames=["localhost"],
        protocols=["crl"],
        http_url="http://pki.example.com",
    )
    return directory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def entries(count: int, now: dt.datetime) -> list[tuple[int, dt.datetime, str | None]]:
    return [
        (
            secrets.randbits(127) | (1 << 126),
            now - dt.timedelta(seconds=secrets.randbelow(30 * 86400)),
            REASONS[i % len(REASONS)],
        )
        for i in range(count)
    ]


async def insert_revoked(directory: Path, rows: list[tuple[int, dt.datetime, str | None]], now: dt.datetime) -> None:

    from server.wiring import build_ca, read_config
    from tests.revocation_support import certificate_row, insert_rows

    ca = await build_ca(read_config(directory / "tetra.toml"))
    try:
        values = [
            certificate_row(
                ISSUER,
                serial,
                "revoked",
                now=now,
                revoked_at=revoked_at,
                reason=reason,
                not_after=now + dt.timedelta(days=60),
                issued_at=now,
            )
            for serial, revoked_at, reason in rows
        ]
        await insert_rows(ca, values, chunk_size=20_000)
    finally:
        await ca.close()


async def tetra_generate(directory: Path, publish: Path) -> tuple[float, int]:
    from ca.revocation.crl import CrlService
    from ca.revocation.settings import CrlSettings
    from server.wiring import build_ca, read_config

    ca = await build_ca(read_config(directory / "tetra.toml"))
    try:
        service = CrlService(ca, CrlSettings(publish_dir=str(publish), lint="pkix"))
        await service.start()
        started = time.perf_counter()
        [full] = await service.generate(ISSUER)
        elapsed = time.perf_counter() - started
        assert full.der is not None
        crl = x509.load_der_x509_crl(full.der)
        assert crl.is_signature_valid(ca.issuers[ISSUER].certificate.public_key())  # type: ignore[arg-type]
        return elapsed, len(full.der)
    finally:
        await ca.close()


def openssl_setup(directory: Path, rows: list[tuple[int, dt.datetime, str | None]], now: dt.datetime) -> Path:
    work = directory / "openssl"
    work.mkdir(exist_ok=True)
    expiry = (now + dt.timedelta(days=60)).strftime("%y%m%d%H%M%SZ")
    with (work / "index.txt").open("w") as index:
        for serial, revoked_at, reason in rows:
            text = format(serial, "X")
            when = revoked_at.strftime("%y%m%d%H%M%SZ") + (f",{reason}" if reason else "")
            index.write(f"R\t{expiry}\t{when}\t{'0' * (len(text) % 2)}{text}\tunknown\t/CN=bench\n")
    (work / "index.txt.attr").write_text("unique_subject = no\n")
    (work / "crlnumber").write_text("1000\n")
    (work / "openssl.cnf").write_text(f"""[ca]
default_ca = bench
[bench]
database = {work / "index.txt"}
crlnumber = {work / "crlnumber"}
certificate = {directory / "ca" / "issuing-ca.pem"}
private_key = {directory / "keys" / "issuing-ca.key"}
default_md = sha256
default_crl_days = 7
crl_extensions = crl_ext
[crl_ext]
authorityKeyIdentifier = keyid:always
""")
    return work


def openssl_generate(directory: Path, work: Path) -> tuple[float, int]:
    out = work / "crl.pem"
    started = time.perf_counter()
    subprocess.run(
        [
            "openssl",
            "ca",
            "-gencrl",
            "-config",
            str(work / "openssl.cnf"),
            "-passin",
            f"file:{directory / 'secrets' / 'passphrase'}",
            "-out",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    der = x509.load_pem_x509_crl(out.read_bytes()).public_bytes(Encoding.DER)
    return elapsed, len(der)


async def latency(batch_delay: float, existing: int, workdir: Path) -> tuple[float, float]:
    """A running server with `existing` revoked entries: `tetra revoke` of one more, then poll
    the published CRL. Returns (seconds from the CLI returning to the CRL showing it, generation s)."""
    directory = await make_ca(workdir)
    now = dt.datetime.now(dt.UTC)
    await insert_revoked(directory, entries(existing, now), now)
    serial = secrets.randbits(127) | (1 << 126)
    from sqlalchemy import insert

    from ca.store.tables import certificates
    from server.wiring import build_ca, read_config

    ca = await build_ca(read_config(directory / "tetra.toml"))
    try:
        await ca.db.write(
            lambda tx: tx.conn.execute(
                insert(certificates).values(
                    issuer=ISSUER,
                    serial=format(serial, "x"),
                    status="issued",
                    subject="",
                    sans="[]",
                    not_before=now,
                    not_after=now + dt.timedelta(days=30),
                    key_algorithm="ec-p256",
                    key_size=256,
                    profile="tls-server",
                    protocol="cli",
                    requester="bench",
                    tbs=b"",
                    created_at=now,
                )
            )
        )
    finally:
        await ca.close()
    port = free_port()
    env = {
        **os.environ,
        "TETRA_SERVER__HTTP": f"127.0.0.1:{port}",
        "TETRA_SERVER__HTTPS": f"127.0.0.1:{free_port()}",
        "TETRA_SERVER__PROTOCOLS": '["crl"]',
        "TETRA_CRL__BATCH_DELAY": f"{batch_delay}s",
        "TETRA_LOGGING__LEVEL": "warning",
    }
    tetra = str(Path(sys.executable).parent / "tetra")
    log = (workdir / "serve.log").open("wb")
    proc = subprocess.Popen(
        [tetra, "serve", "--config", str(directory / "tetra.toml")], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/crl/{ISSUER}.crl"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("tetra serve did not publish its first CRL")
            time.sleep(0.3)
        generation = time.perf_counter()
        subprocess.run(
            [
                tetra,
                "revoke",
                format(serial, "x"),
                "--reason",
                "keyCompromise",
                "--config",
                str(directory / "tetra.toml"),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        returned = time.monotonic()
        etag = ""
        while True:  # conditional GETs: a 304 costs the server nothing, a 4.5 MB CRL would
            request = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
            try:
                with urllib.request.urlopen(request, timeout=30) as resp:
                    etag = resp.headers.get("ETag", "")
                    crl = x509.load_der_x509_crl(resp.read())
                if crl.get_revoked_certificate_by_serial_number(serial) is not None:
                    return time.monotonic() - returned, time.perf_counter() - generation
            except urllib.error.HTTPError as exc:
                if exc.code != 304:
                    raise
            if time.monotonic() - returned > batch_delay + 120:
                raise SystemExit("the revocation never reached the published CRL")
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


async def main(args: argparse.Namespace) -> int:
    if shutil.which("openssl") is None:
        raise SystemExit("openssl is not installed")
    openssl_version = subprocess.run(["openssl", "version"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# CRL generation",
        "",
        f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, {openssl_version}",
        "",
        f"Best of {args.repeat} runs each; P-256 issuing CA key for both; SQLite store.",
        "",
        "| revoked entries | Tetra (store -> published) s | openssl ca -gencrl s | Tetra / openssl "
        "| Tetra DER bytes | openssl DER bytes |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="bench-crl-") as tmp:
            workdir = Path(tmp)
            print(f"[{size:,}] setting up", file=sys.stderr)
            directory = await make_ca(workdir)
            now = dt.datetime.now(dt.UTC)
            rows = entries(size, now)
            await insert_revoked(directory, rows, now)
            work = openssl_setup(directory, rows, now)
            ours = [await tetra_generate(directory, workdir / "published") for _ in range(args.repeat)]
            theirs = [openssl_generate(directory, work) for _ in range(args.repeat)]
            t_time, t_size = min(ours)
            o_time, o_size = min(theirs)
            print(f"[{size:,}] Tetra {t_time:.2f} s, openssl {o_time:.2f} s", file=sys.stderr)
            lines.append(
                f"| {size:,} | {t_time:.2f} | {o_time:.2f} | {t_time / o_time:.2f}x | {t_size:,} | {o_size:,} |"
            )
    if not args.no_latency:
        with tempfile.TemporaryDirectory(prefix="bench-crl-latency-") as tmp:
            seen, _ = await latency(args.batch_delay, args.latency_entries, Path(tmp))
        lines += [
            "",
            f"Revocation to published CRL (`tetra revoke` returning -> GET /crl shows it), "
            f"{args.latency_entries:,} revoked entries, batch_delay {args.batch_delay:g} s: {seen:.2f} s",
        ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sizes", default="10000,100000", help="add 1000000 for the million-entry row")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--no-latency", action="store_true")
    p.add_argument("--batch-delay", type=float, default=5.0)
    p.add_argument("--latency-entries", type=int, default=100_000)
    p.add_argument("--output", type=Path, default=None)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
