"""Every crash heals itself: real `tetra serve` processes killed between intent and result
(ST-17, ST-18), and SQLite images taken as a power cut would leave them (ST-20).

A process is stopped at a fault point (ca/faults.py: F2 once the intent is stored, F3 once the
key has signed and the result is not stored) and killed with SIGKILL. A power cut is, on
SQLite, a process frozen with SIGSTOP at an arbitrary moment of an issuance burst while its
database and write-ahead log are copied (the copy is exactly what the disk held at that
instant); on PostgreSQL, a private cluster (never the shared test server) stopped with
`pg_ctl stop -m immediate` mid-burst.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as ocsp_x509
from sqlalchemy import select

from ca.recovery import RECOVERY_ACTOR, settle_stale_intents
from ca.revocation.asn1 import certificate_subject, public_key_bits
from ca.revocation.crl import CrlService
from ca.revocation.model import CertId, StatusQuery
from ca.revocation.ocsp import OcspService
from ca.revocation.pointers import install_pointers
from ca.service import CertificateAuthority
from ca.sigalg import verify_bytes
from ca.store.migrate import upgrade
from ca.store.repositories import CertificateFilter
from ca.store.tables import audit_log
from server.wiring import build_ca, read_config
from tests.helpers import make_csr
from tests.integration.serverproc import ServerProcess, free_port
from tests.revocation_support import check_crl, check_ocsp, crl_settings, multi_request_der, ocsp_settings

pytestmark = pytest.mark.slow

ISSUER = "issuing-ca"
GRACE = 1.0  # seconds: [ocsp] signing_grace for these servers, so a restart finds the intent stale
SERVE_REVOCATION = {
    "TETRA_SERVER__PROTOCOLS": '["ocsp","crl"]',
    "TETRA_OCSP__RESPONDER_COUNTRY": "US",
    "TETRA_OCSP__SIGNING_GRACE": f"{GRACE}s",
    "TETRA_CRL__BATCH_DELAY": "1s",
    "TETRA_CRL__LINT": "cabf",
}


def _enroll_body(name: str) -> bytes:
    csr, _ = make_csr([name])
    return json.dumps({"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-client"}).encode()


def _post(
    url: str, body: bytes, content_type: str, timeout: float = 30, auth: dict[str, str] | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": content_type, **(auth or {})}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


def _enroll_in_background(server: ServerProcess, name: str) -> threading.Thread:
    """One enrollment whose answer never comes (the server is killed under it)."""
    auth = server.auth

    def run() -> None:
        try:
            _post(f"{server.base}/api/v1/enroll", _enroll_body(name), "application/json", timeout=60, auth=auth)
        except OSError:
            pass  # the connection dies with the server

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _db_url(backend: str, ca_dir: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite:///{ca_dir / 'tetra.db'}"
    url: str = request.getfixturevalue("postgres_url")
    upgrade(url)
    return url


async def _open(ca_dir: Path, db_url: str) -> CertificateAuthority:
    return await build_ca(read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": db_url}))


def _cert_id(issuer: x509.Certificate, serial: int) -> CertId:
    """The CertID of a serial alone (RFC 6960 §4.1.1): the certificate itself never reached anyone."""
    name_hash = hashlib.sha1(certificate_subject(issuer)).digest()
    key_hash = hashlib.sha1(public_key_bits(issuer.public_key())).digest()
    return CertId("sha1", name_hash, key_hash, serial)


@pytest.mark.parametrize(
    ("backend", "point"),
    [("sqlite", "F2"), ("sqlite", "F3"), ("postgres", "F3")],
    ids=["sqlite-F2", "sqlite-F3", "pg-F3"],
)
def test_kill_between_intent_and_result_heals_after_restart(
    ca_dir: Path, tmp_path: Path, backend: str, point: str, request: pytest.FixtureRequest
) -> None:
    """ST-17 / ST-18 / ST-01: `tetra serve` is killed (SIGKILL) with an intent stored and no
    result (F2: before the key signed; F3: after). Restarted under the same configuration, the
    process takes its own lease back at once (it does not wait out the dead one's ~30 s) and, as
    the leader, settles the stale row before it serves: revoked (unspecified) by tetra:recovery,
    with a WARNING in its log. OCSP answers revoked for the serial, the CRL lists it, the audit
    chain verifies, and issuance goes on."""
    db_url = _db_url(backend, ca_dir, request)
    config = ca_dir / "tetra.toml"
    # The first serves no OCSP: its responder certificate would stop at the fault point itself.
    first = ServerProcess(config, db_url, tmp_path / "first.log", {"TETRA_FAULT_POINT": point})
    first.wait_ready()
    _enroll_in_background(first, "crashed.example.com")
    _wait_for(lambda: f"TETRA-FAULT-POINT {point}" in first.log_path.read_text(), 60, f"fault point {point}")
    first.kill()

    async def stuck_row() -> int:
        ca = await _open(ca_dir, db_url)
        try:
            [row] = await ca.certificates.list(CertificateFilter(status="signing"))
            return row.serial
        finally:
            await ca.close()

    serial = asyncio.run(stuck_row())
    time.sleep(GRACE + 0.5)  # the intent is older than the grace when the next process looks

    started = time.monotonic()
    second = ServerProcess(config, db_url, tmp_path / "second.log", SERVE_REVOCATION)
    try:
        second.wait_ready()
        ready_after = time.monotonic() - started

        async def settled() -> None:
            ca = await _open(ca_dir, db_url)
            try:
                record = await ca.certificate_by_serial(ISSUER, serial)
                assert record is not None and record.status == "revoked", record
                assert record.revocation_reason == "unspecified" and record.der is None
                rows = await ca.db.read(
                    lambda c: c.execute(
                        select(audit_log.c.action, audit_log.c.actor).where(
                            audit_log.c.target == f"{ISSUER}/{serial:x}"
                        )
                    ).all()
                )
                assert [(r.action, r.actor) for r in rows][-1] == ("certificate.revoked", RECOVERY_ACTOR)
                assert (await ca.audit.verify()).ok
            finally:
                await ca.close()

        asyncio.run(settled())  # already when the restarted server first answers: it led at once
        log = second.log_path.read_text()
        assert "now runs the revocation jobs" in log and f"{serial:x}" in log and "tetra.recovery" in log, log
        assert ready_after < 20, f"restart took {ready_after:.1f} s"

        issuer = x509.load_der_x509_certificate(_get(f"{second.base}/ca/{ISSUER}.cer"))
        status, body = _post(
            f"{second.base}/ocsp", multi_request_der([_cert_id(issuer, serial)]), "application/ocsp-request"
        )
        assert status == 200
        assert check_ocsp(body, issuer).certificate_status == ocsp_x509.OCSPCertStatus.REVOKED

        def listed() -> bool:
            crl = x509.load_der_x509_crl(_get(f"{second.base}/crl/{ISSUER}.crl"))
            return crl.get_revoked_certificate_by_serial_number(serial) is not None

        _wait_for(listed, 30, "the CRL to list the recovered serial")
        check_crl(_get(f"{second.base}/crl/{ISSUER}.crl"), issuer)

        status, _ = _post(
            f"{second.base}/api/v1/enroll", _enroll_body("after.example.com"), "application/json", auth=second.auth
        )
        assert status == 201
    finally:
        second.stop()


# -- ST-20: power cut -----------------------------------------------------------------------


def _freeze_and_copy(pid: int, database: Path, target: Path) -> None:
    """SIGSTOP the server wherever it is (mid-transaction, mid-fsync), copy the database and
    its write-ahead log as the disk holds them, and let it run on: the copy is a power cut."""
    os.kill(pid, signal.SIGSTOP)
    try:
        _wait_for(lambda: Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "T", 5, "SIGSTOP")
        target.mkdir()
        for suffix in ("", "-wal"):  # -shm is rebuilt from the log on open, as after a reboot
            source = Path(f"{database}{suffix}")
            if source.exists():
                shutil.copyfile(source, target / f"tetra.db{suffix}")
    finally:
        os.kill(pid, signal.SIGCONT)


async def _burst(
    base: str, auth: dict[str, str], count: int, concurrency: int, first: asyncio.Event | None = None
) -> set[int]:
    """Enroll `count` certificates; the serials of those the server acknowledged (201). Refusals
    and dropped connections (the store or the server going away) just end a worker's turn.
    `first` is set at the first acknowledgement, for a cut that must fall inside the burst."""
    import aiohttp

    bodies = [_enroll_body(f"cut{i}.example.com") for i in range(count)]
    headers = {**auth, "Content-Type": "application/json"}
    acknowledged: set[int] = set()

    async def worker(session: aiohttp.ClientSession) -> None:
        while bodies:
            try:
                async with session.post(f"{base}/api/v1/enroll", data=bodies.pop(), headers=headers) as resp:
                    if resp.status == 201:
                        acknowledged.add(int((await resp.json())["serial"], 16))
                        if first is not None:
                            first.set()
            except aiohttp.ClientError:
                pass

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return acknowledged


async def _audit_hashes(ca: CertificateAuthority) -> dict[int, str]:
    rows = await ca.db.read(lambda c: c.execute(select(audit_log.c.seq, audit_log.c.hash)).all())
    return {r.seq: r.hash for r in rows}


async def _check_after_power_cut(ca_dir: Path, url: str) -> tuple[dict[str, int], dict[int, str]]:
    """The invariants a store must keep after a power cut, then recovery on it: certificate
    counts by status and the audit log (sequence -> hash) as the cut left them."""
    ca = await _open(ca_dir, url)
    ocsp = OcspService(ca, ocsp_settings())
    try:
        report = await ca.audit.verify()
        assert report.ok, report.problems
        audit = await _audit_hashes(ca)
        records = await ca.certificates.list(CertificateFilter(limit=100_000))
        counts: dict[str, int] = {}
        for record in records:
            counts[record.status] = counts.get(record.status, 0) + 1
            if record.status == "issued":
                assert record.der is not None
                cert = x509.load_der_x509_certificate(record.der)
                assert cert.tbs_certificate_bytes == record.tbs
                public = ca.issuers[record.issuer].certificate.public_key()
                assert verify_bytes(public, cert.signature, record.tbs, cert.signature_hash_algorithm)
        stuck = [r for r in records if r.status == "signing"]

        await install_pointers(ca, crl_settings())
        await ocsp.start()
        issuer = ca.issuers[ISSUER].certificate

        async def status(serial: int) -> ocsp_x509.OCSPCertStatus:
            answer = await ocsp.respond(StatusQuery((_cert_id(issuer, serial),)))
            return ocsp_x509.load_der_ocsp_response(answer.der).certificate_status

        for record in stuck:
            assert await status(record.serial) == ocsp_x509.OCSPCertStatus.UNKNOWN
        settled = await settle_stale_intents(ca, dt.timedelta(0))
        assert sorted(s.serial for s in settled) == sorted(r.serial for r in stuck)
        assert all(s.outcome == "revoked" for s in settled)
        await ocsp.poll_feed()
        [crl] = await CrlService(ca, crl_settings()).generate(ISSUER)
        assert crl.der is not None
        listed = {entry.serial_number for entry in check_crl(crl.der, issuer)}
        for record in stuck:
            assert await status(record.serial) == ocsp_x509.OCSPCertStatus.REVOKED
            assert record.serial in listed
        assert await ca.certificates.list(CertificateFilter(status="signing")) == []
        assert (await ca.audit.verify()).ok
        return counts, audit
    finally:
        await ocsp.close()
        await ca.close()


def test_sqlite_power_cut_images_keep_the_invariants(ca_dir: Path, tmp_path: Path) -> None:
    """ST-20: SQLite images of a server cut off at arbitrary moments of an issuance burst
    (the process frozen while its database and log are copied): each opens cleanly (integrity
    check), its audit chain verifies and is a prefix of the final one, every issued row holds a
    certificate with the stored TBS and a valid signature, OCSP never says good for an intent
    without a result, and recovery revokes every such intent, after which OCSP says revoked and
    the CRL lists it."""
    database = ca_dir / "tetra.db"
    server = ServerProcess(ca_dir / "tetra.toml", f"sqlite:///{database}", tmp_path / "serve.log")
    images = [tmp_path / f"cut{i}" for i in range(6)]
    try:
        server.wait_ready()
        auth = server.auth  # made now: the burst's timing must not include it

        async def burst_and_cut() -> None:
            task = asyncio.create_task(_burst(server.base, auth, 800, 12))
            for image in images:
                await asyncio.sleep(0.15)
                await asyncio.to_thread(_freeze_and_copy, server.proc.pid, database, image)
            await task

        asyncio.run(burst_and_cut())
    finally:
        server.stop()

    async def final_audit() -> dict[int, str]:
        ca = await _open(ca_dir, f"sqlite:///{database}")
        try:
            return await _audit_hashes(ca)
        finally:
            await ca.close()

    final = asyncio.run(final_audit())
    seen = []
    for image in images:
        with sqlite3.connect(image / "tetra.db") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        counts, audit = asyncio.run(_check_after_power_cut(ca_dir, f"sqlite:///{image / 'tetra.db'}"))
        assert audit.items() <= final.items()  # a prefix of what happened
        seen.append(counts)
    print(f"power-cut images: {seen}")
    issued = [counts.get("issued", 0) for counts in seen]
    assert issued == sorted(issued) and len(set(issued)) >= 3, seen  # cuts at different moments of the burst
    assert any(counts.get("signing") for counts in seen), seen  # and caught intents without results


@contextmanager
def _private_cluster(root: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A PostgreSQL cluster of this test's own (never the shared server): its URL, and functions
    that start it and stop it as a power cut would (`pg_ctl stop -m immediate`: no checkpoint,
    crash recovery at the next start). Skips where no cluster can be made here."""
    tools = [shutil.which(name) for name in ("initdb", "pg_ctl", "runuser")]
    try:
        owner = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no postgres user to run a private cluster")
    if os.geteuid() != 0 or None in tools:
        pytest.skip("initdb, pg_ctl and runuser as root are needed for a private cluster")
    os.chown(root, owner.pw_uid, owner.pw_gid)
    data, port = root / "data", free_port()

    def as_postgres(*args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=120)

    def start() -> None:
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        as_postgres("pg_ctl", "-D", str(data), "-l", str(root / "server.log"), "-o", options, "-w", "start")

    def cut() -> None:
        as_postgres("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")

    as_postgres("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    start()
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", start, cut
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )


def test_postgresql_immediate_stop_keeps_the_invariants(ca_dir: Path, tmp_path: Path) -> None:
    """ST-20 on PostgreSQL: a private cluster is stopped with `pg_ctl stop -m immediate` in the
    middle of an issuance burst (the database side of a power cut: no checkpoint, WAL replay at
    restart). Every certificate a client was given (201) is in the store as issued; the audit
    chain verifies; every issued row holds its TBS with a valid signature; recovery revokes
    each intent left without a result, and OCSP and the CRL say so."""
    root = Path(tempfile.mkdtemp(prefix="tetra-pg-"))
    try:
        with _private_cluster(root) as (url, start, cut):
            upgrade(url)
            server = ServerProcess(ca_dir / "tetra.toml", url, tmp_path / "serve.log")
            try:
                server.wait_ready()
                auth = server.auth  # made now: the burst's timing must not include it

                async def burst_and_cut() -> set[int]:
                    # Cut once issuance is flowing (on a loaded machine the first answers can
                    # take longer than any fixed delay), then a little later.
                    first = asyncio.Event()
                    task = asyncio.create_task(_burst(server.base, auth, 800, 12, first))
                    await asyncio.wait_for(first.wait(), 60)
                    await asyncio.sleep(0.3)
                    await asyncio.to_thread(cut)
                    return await task

                acknowledged = asyncio.run(burst_and_cut())
            finally:
                server.kill()
            start()
            counts, _ = asyncio.run(_check_after_power_cut(ca_dir, url))
            assert acknowledged and len(acknowledged) < 800, len(acknowledged)  # the cut fell inside the burst

            async def stored() -> set[int]:
                ca = await _open(ca_dir, url)
                try:
                    return {
                        r.serial
                        for r in await ca.certificates.list(CertificateFilter(limit=100_000))
                        if r.status == "issued"
                    }
                finally:
                    await ca.close()

            assert acknowledged <= asyncio.run(stored())  # nothing a client got was lost
            print(f"after pg_ctl stop -m immediate: {counts}, {len(acknowledged)} acknowledged")
    finally:
        shutil.rmtree(root, ignore_errors=True)
