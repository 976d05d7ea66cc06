"""Store faults under the issuing core, with the real stores and signers: a connection killed
mid-transaction (ST-05), a database that stops answering (ST-06), one insert that fails
(ST-07), an audit log that cannot be written (ST-11), and a backup restored (ST-16)."""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp as ocsp_x509
from sqlalchemy import func, make_url, select

from ca.clock import FrozenClock
from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, EnrollmentRequest, Issued, Requester
from ca.errors import CAError, FailureReason, StoreUnavailable
from ca.recovery import settle_stale_intents
from ca.revocation.crl import CrlService
from ca.revocation.model import CertId, StatusQuery
from ca.revocation.ocsp import OcspService
from ca.revocation.pointers import install_pointers
from ca.service import CertificateAuthority
from ca.store.db import Tx
from ca.store.migrate import upgrade
from ca.store.repositories import CertificateFilter
from ca.store.tables import audit_log, certificates
from server.app import CA, build_app
from server.config import ServerConfig
from server.wiring import build_ca, read_config
from tests.conftest import _pg_exec
from tests.helpers import CountingSigner, GatedSigner, LoopGaps, enroll, make_csr, refuse_issued
from tests.integration.operator_api import serve_on_http
from tests.revocation_support import check_crl, check_ocsp, crl_settings, ocsp_settings

pytestmark = pytest.mark.slow

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)
Client = Callable[..., Awaitable[TestClient[Any, Any]]]
ISSUER = "issuing-ca"


def _request(name: str) -> EnrollmentRequest:
    csr, _ = make_csr([name])
    return enrollment_from_csr(csr, protocol="cli", profile_name="tls-client", requester=OPERATOR)


async def _counts(ca: CertificateAuthority) -> tuple[int, int]:
    """(certificate rows, audit events)."""

    def q(conn: Any) -> tuple[int, int]:
        rows = conn.execute(select(func.count()).select_from(certificates)).scalar_one()
        events = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
        return int(rows), int(events)

    return await ca.db.read(q)


def _assert_try_later(exc: object) -> None:
    """docs/reliability.md, Conventions: "clear error": the store's 'unavailable', nothing internal shown."""
    assert isinstance(exc, StoreUnavailable), repr(exc)
    assert exc.reason is FailureReason.UNAVAILABLE, exc
    assert exc.public_detail() == "the CA cannot process this request now; try again later"


@pytest.fixture
def pg_config(ca_dir: Path, postgres_url: str) -> ServerConfig:
    """The demo CA on a fresh, migrated PostgreSQL database (for faults only PostgreSQL can show)."""
    upgrade(postgres_url)
    return read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": postgres_url})


@asynccontextmanager
async def _authority(config: ServerConfig, **changes: Any) -> AsyncIterator[CertificateAuthority]:
    authority = await build_ca(replace(config, **changes))
    try:
        yield authority
    finally:
        await authority.close()


# -- ST-05: the connection dies mid-transaction -----------------------------------------


@contextmanager
def _audit_head_locked(url: str) -> Iterator[None]:
    """Another session holds the audit head's row lock: every write transaction of the CA
    stops inside itself (its rows inserted, its audit events not yet chained) until released."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
        yield
        conn.rollback()


def _waiting_for_lock(url: str, killed: set[int]) -> list[int]:
    """CA connections of this database now waiting for a lock, except those already killed.
    (A fresh autocommit session each time: pg_stat_activity is a snapshot per transaction.)"""
    with psycopg.connect(url, autocommit=True) as watcher:
        rows = watcher.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND wait_event_type = 'Lock'"
        ).fetchall()
    return [pid for (pid,) in rows if pid not in killed]


async def _until_waiting(url: str, killed: set[int]) -> int:
    stop = time.monotonic() + 10
    while time.monotonic() < stop:
        waiting = _waiting_for_lock(url, killed)
        if waiting:
            return waiting[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no CA transaction is waiting for the audit head lock")


async def _kill_the_waiting_backend(url: str, killed: set[int]) -> None:
    """pg_terminate_backend on the CA connection now waiting for the lock (not one killed before)."""
    pid = await _until_waiting(url, killed)
    with psycopg.connect(url, autocommit=True) as killer:
        assert killer.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    killed.add(pid)


@pytest.mark.parametrize("kills", [1, 2])
@pytest.mark.parametrize("stage", ["intent", "result"])
@pytest.mark.parametrize("mode", ["async", "thread"])
async def test_connection_killed_mid_transaction(
    pg_config: ServerConfig, postgres_url: str, mode: str, stage: str, kills: int
) -> None:
    """ST-05: pg_terminate_backend on the CA's connection inside the intent transaction (its
    certificate row written, its audit event not) or inside the result transaction (status
    'issued' written, its audit event not). The transaction is rolled back: no half rows.
    Killed once, it is run again on a new connection and the issuance completes with one
    signature and no duplicate row or event. Killed on the retry too, the caller gets 'try
    later': killed in the intent, the signer was never called and nothing is stored; killed in
    the result, the intent stays a 'signing' row that can be revoked by serial. Either way the
    next issuance succeeds on the same CA object (no restart)."""
    async with _authority(pg_config, database_mode=mode) as ca:
        assert isinstance(await enroll(ca, _request("warm-up.example.com")), Issued)
        issuer = ca.issuers[ISSUER]
        gated = GatedSigner(issuer.signer)
        issuer.signer = gated
        rows, events = await _counts(ca)
        killed: set[int] = set()

        task = asyncio.create_task(enroll(ca, _request("killed.example.com")))
        if stage == "intent":
            gated.gate.set()
        else:
            await asyncio.wait_for(gated.entered.wait(), 10)
        with _audit_head_locked(postgres_url):
            gated.gate.set()
            for _ in range(kills):
                await _kill_the_waiting_backend(postgres_url, killed)
            if kills == 1:
                await _until_waiting(postgres_url, killed)  # the retry, on a new connection
        outcome = await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)

        if kills == 1:
            assert isinstance(outcome[0], Issued), outcome
            assert gated.runs == 1
            assert await _counts(ca) == (rows + 1, events + 2)  # intent + issued, once each
        elif stage == "intent":
            _assert_try_later(outcome[0])
            assert gated.runs == 0
            assert await _counts(ca) == (rows, events)
        else:
            _assert_try_later(outcome[0])
            assert gated.runs == 1
            assert await _counts(ca) == (rows + 1, events + 1)  # the intent and its audit event only
            [stuck] = await ca.certificates.list(CertificateFilter(status="signing"))
            assert stuck.der is None and stuck.issued_at is None and stuck.tbs
            revoked = await ca.revoke(ISSUER, stuck.serial, "superseded", requester="operator")
            assert revoked.status == "revoked"

        again = await enroll(ca, _request("after.example.com"))
        assert isinstance(again, Issued)
        assert (await ca.audit.verify()).ok


@pytest.mark.parametrize("mode", ["async", "thread"])
async def test_connections_closed_by_a_server_restart(pg_config: ServerConfig, postgres_url: str, mode: str) -> None:
    """ST-05: every pooled connection is closed by the server while idle (a restart or a
    failover). The next issuance does not fail on a stale connection: the first statement's
    failure is before COMMIT, so the transaction runs again on a new connection."""
    async with _authority(pg_config, database_mode=mode) as ca:
        warm = await asyncio.gather(*(enroll(ca, _request(f"warm{i}.example.com")) for i in range(8)))
        assert all(isinstance(w, Issued) for w in warm)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            (closed,) = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone() or (0,)
        assert closed >= 1
        for i in range(3):
            assert isinstance(await enroll(ca, _request(f"after{i}.example.com")), Issued)
        assert (await ca.audit.verify()).ok


# -- ST-06: the database stops answering ----------------------------------------------------


class PausableProxy:
    """A loopback TCP proxy in front of the shared PostgreSQL, on a thread and event loop of its
    own. pause() stops forwarding in both directions while every connection stays open: to the CA
    the server hangs, as if its postmaster were SIGSTOPped (which the shared server must not be)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-proxy", daemon=True)
        self._flowing = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)

    async def _listen(self) -> int:
        self._flowing.set()
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True)
        self._writers -= {writer, up_writer}

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    def pause(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        self._loop.call_soon_threadsafe(self._flowing.set)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@contextmanager
def _proxy_to(url: str) -> Iterator[tuple[PausableProxy, str]]:
    parsed = make_url(url)
    proxy = PausableProxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    port = proxy.start()
    try:
        yield proxy, parsed.set(port=port).render_as_string(hide_password=False)
    finally:
        proxy.close()


def _backends(url: str) -> int:
    """The CA's connections to its database, counted by the server itself."""
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize("mode", ["async", "thread"])
async def test_database_that_stops_answering(pg_config: ServerConfig, postgres_url: str, mode: str) -> None:
    """ST-06: the database stops answering (connections open, no bytes back). Concurrent
    issuances and a readiness ping each fail with 'try later' within the configured
    [database] timeout_seconds, the signer is never called, and the event loop keeps turning
    meanwhile. When the database answers again, nothing the failed requests began is
    committed behind their back, connections and worker threads stay within the pool, and
    issuance resumes without a restart."""
    timeout, pool = 1.5, 4
    with _proxy_to(postgres_url) as (proxy, proxied):
        async with _authority(
            pg_config, database_mode=mode, database_url=proxied, database_timeout=timeout, database_pool_size=pool
        ) as ca:
            issuer = ca.issuers[ISSUER]
            counting = CountingSigner(issuer.signer)
            issuer.signer = counting
            assert isinstance(await enroll(ca, _request("warm-up.example.com")), Issued)
            rows, events = await _counts(ca)

            proxy.pause()
            async with LoopGaps() as loop:
                started = time.monotonic()
                hung = [enroll(ca, _request(f"hung{i}.example.com")) for i in range(3)]
                outcomes = await asyncio.gather(*hung, ca.db.ping(), return_exceptions=True)
                elapsed = time.monotonic() - started
            for outcome in outcomes:
                _assert_try_later(outcome)
            assert elapsed < timeout + 0.5, f"failed after {elapsed:.2f}s, bound {timeout}s"
            assert loop.longest < 0.25, f"the event loop stalled for {loop.longest:.2f}s"
            assert counting.runs == 1  # the warm-up only

            proxy.resume()
            await asyncio.sleep(1.0)  # whatever was stuck on the server finishes now
            assert await _counts(ca) == (rows, events)  # no late commit of a request told "try later"
            assert _backends(postgres_url) <= 2 * pool  # pool_size + max_overflow
            assert len([t for t in threading.enumerate() if t.name.startswith("tetra-db")]) <= pool
            again = await asyncio.wait_for(enroll(ca, _request("after.example.com")), 5)
            assert isinstance(again, Issued)
            assert (await ca.audit.verify()).ok


# -- ST-07: one insert fails ----------------------------------------------------------------


async def _exec_ddl(ca: CertificateAuthority, statements: list[str]) -> None:
    def run(tx: Tx) -> None:
        for statement in statements:
            tx.conn.exec_driver_sql(statement)

    await ca.db.write(run)


async def test_result_write_refused_by_a_trigger(config: ServerConfig) -> None:
    """ST-07 / ST-17: a trigger makes the result write (status 'issued') fail after the key has
    signed. The caller gets a clear internal error, never the certificate; the intent row stays
    'signing' with its TBS, and OCSP says 'unknown' for it, never 'good', also past the signing
    grace. Recovery then tries to store the certificate the process kept; the store still
    refuses it, so the serial is revoked (unspecified, by tetra:recovery): OCSP says revoked
    and the next CRL lists it. With the trigger dropped, issuance works again."""
    clock = FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    ca = await build_ca(config, clock=clock)
    ocsp = OcspService(ca, ocsp_settings(), monotonic=lambda: clock.now().timestamp())  # its cache ages with the clock
    try:
        await install_pointers(ca, crl_settings())
        await ocsp.start()  # its responder certificate is issued before the trigger exists
        issuer = ca.issuers[ISSUER]
        counting = CountingSigner(issuer.signer)
        issuer.signer = counting
        async with refuse_issued(ca):
            with pytest.raises(CAError) as err:
                await enroll(ca, _request("refused.example.com"))
            assert err.value.reason in (FailureReason.INTERNAL, FailureReason.UNAVAILABLE), err.value
            assert not err.value.peer_caused and "trigger" not in err.value.public_detail()
            assert counting.runs == 1  # it was signed: the row must stay answerable and revocable
            [row] = await ca.certificates.list(CertificateFilter(status="signing"))
            assert row.der is None and row.tbs and row.profile == "tls-client"
            assert len(issuer.unrecorded) == 1  # the signed certificate, kept for recovery

            hashes = ocsp._hashes[ISSUER]
            cert_id = CertId("sha1", hashes.name_hash["sha1"], hashes.key_hash["sha1"], row.serial)

            async def status() -> ocsp_x509.OCSPCertStatus:
                answer = await ocsp.respond(StatusQuery((cert_id,)))
                return check_ocsp(answer.der, issuer.certificate).certificate_status

            assert await status() == ocsp_x509.OCSPCertStatus.UNKNOWN  # an issuance in flight, for all we know
            clock.advance(ocsp.settings.signing_grace + dt.timedelta(seconds=1))
            assert await status() == ocsp_x509.OCSPCertStatus.UNKNOWN  # cut short: never good before settled
            [settled] = await settle_stale_intents(ca, ocsp.settings.signing_grace)
        assert (settled.serial, settled.outcome) == (row.serial, "revoked")
        assert len(issuer.unrecorded) == 0
        await ocsp.poll_feed()  # as the server's feed job does: the cached answer is evicted
        assert await status() == ocsp_x509.OCSPCertStatus.REVOKED
        [crl] = await CrlService(ca, crl_settings()).generate(ISSUER)
        assert crl.der is not None
        assert row.serial in {entry.serial_number for entry in check_crl(crl.der, issuer.certificate)}

        assert isinstance(await enroll(ca, _request("after.example.com")), Issued)
        assert (await ca.audit.verify()).ok
    finally:
        await ocsp.close()
        await ca.close()


# -- ST-11: the audit log cannot be written -------------------------------------------------


@contextmanager
def _small_tmpfs(where: Path, size: str = "16m") -> Iterator[Path]:
    """A tmpfs of its own (we run as root), skipped where mounting is not permitted."""
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb") as out:
        try:
            while True:
                out.write(chunk)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


_REFUSE_AUDIT = [
    "CREATE FUNCTION tetra_test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'could not extend audit_log: No space left on device' USING ERRCODE = 'disk_full'; "
    "END $$",
    "CREATE TRIGGER tetra_test_refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW "
    "EXECUTE FUNCTION tetra_test_refuse_audit()",
]
_ALLOW_AUDIT = ["DROP TRIGGER tetra_test_refuse_audit ON audit_log", "DROP FUNCTION tetra_test_refuse_audit()"]


@pytest.mark.parametrize("fault", ["sqlite-on-a-full-tmpfs", "postgresql-audit-insert-refused"])
async def test_audit_log_cannot_be_written(
    aiohttp_client: Client,
    ca_dir: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    fault: str,
) -> None:
    """ST-11: the audit log cannot take a row: the SQLite store's filesystem is full (a small
    tmpfs), or PostgreSQL refuses every audit_log insert ('disk_full', from a trigger). Issuance
    stops, closed: 503 with Retry-After, the signer is never called, and no certificate row
    exists without its audit event (they share one transaction). /readyz says unavailable
    while /healthz still answers. Once the space is back (the trigger dropped), /readyz is
    ready, issuance resumes without a restart and the audit chain verifies end to end."""
    with ExitStack() as stack:
        if fault.startswith("sqlite"):
            mount = stack.enter_context(_small_tmpfs(tmp_path / "small"))
            shutil.copy2(ca_dir / "tetra.db", mount / "tetra.db")
            config = read_config(
                ca_dir / "tetra.toml", environ={"TETRA_DATABASE__URL": f"sqlite:///{mount / 'tetra.db'}"}
            )
        else:
            config = request.getfixturevalue("pg_config")
        config = replace(config, manage=replace(config.manage, also_on=("http",)))  # /api/v1 on the test client
        client, auth = await serve_on_http(aiohttp_client, build_app(config))
        ca = client.app[CA]
        counting = CountingSigner(ca.issuers[ISSUER].signer)
        ca.issuers[ISSUER].signer = counting

        async def enroll(name: str) -> int:
            csr, _ = make_csr([name])
            body = {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-client"}
            resp = await client.post("/api/v1/enroll", json=body, headers=auth)
            if resp.status == 503:
                assert resp.headers.get("Retry-After"), "503 without Retry-After"
            return resp.status

        assert await enroll("before.example.com") == 201
        assert (await client.get("/readyz")).status == 200
        runs = counting.runs
        rows, events = await _counts(ca)

        if fault.startswith("sqlite"):
            filler = _fill(mount)
            restore: Callable[[], Awaitable[None]] = _async(filler.unlink)
        else:
            await _exec_ddl(ca, _REFUSE_AUDIT)

            async def restore() -> None:
                await _exec_ddl(ca, _ALLOW_AUDIT)

        try:
            assert [await enroll(f"refused{i}.example.com") for i in range(3)] == [503] * 3
            ready = await client.get("/readyz")
            assert ready.status == 503
            assert (await ready.json())["checks"]["database"] != "ok"
            assert (await client.get("/healthz")).status == 200
        finally:
            await restore()
        assert counting.runs == runs  # fail closed: the key never signed
        assert await _counts(ca) == (rows, events)  # no certificate without its audit event

        assert (await client.get("/readyz")).status == 200
        assert await enroll("after.example.com") == 201
        assert counting.runs == runs + 1
        report = await ca.audit.verify()
        assert report.ok, report.problems


def _async(fn: Callable[[], object]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        fn()

    return call


# -- ST-16: a backup restored -------------------------------------------------------------


class StoreBackup:
    """An operator's backup and restore of the store. SQLite: the online backup API, restored
    over the file while the CA is down. PostgreSQL: pg_dump -Fc, then pg_restore into a new
    database (dropped by close())."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url = make_url(url)
        self.dump = directory / "backup.dump"
        self._made: list[str] = []

    def backup(self) -> None:
        """A consistent copy of the live store, now."""
        if self.url.get_backend_name() == "sqlite":
            with sqlite3.connect(self.url.database or "") as live, sqlite3.connect(self.dump) as copy:
                live.backup(copy)
        else:
            url = self.url.render_as_string(hide_password=False)
            subprocess.run(["pg_dump", "-Fc", "-f", str(self.dump), url], check=True, capture_output=True, timeout=60)

    def restore(self) -> str:
        """The store as it was at backup(); returns its URL."""
        if self.url.get_backend_name() == "sqlite":
            live = Path(self.url.database or "")
            for suffix in ("-wal", "-shm"):
                Path(f"{live}{suffix}").unlink(missing_ok=True)
            shutil.copyfile(self.dump, live)
            return self.url.render_as_string(hide_password=False)
        name = f"{self.url.database}_restored"
        _pg_exec(f'CREATE DATABASE "{name}"')
        self._made.append(name)
        target = self.url.set(database=name).render_as_string(hide_password=False)
        subprocess.run(["pg_restore", "--no-owner", "-d", target, str(self.dump)], check=True, capture_output=True)
        return target

    def close(self) -> None:
        for name in self._made:
            _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_restored_backup_never_reuses_serials_or_crl_numbers(
    config: ServerConfig, db_url: str, tmp_path: Path
) -> None:
    """ST-16: the store is backed up, the CA issues, revokes and publishes CRLs on, then the
    backup is restored (everything after it lost). The restored CA resumes: its audit chain
    verifies, it issues with serials it never used before (random, not a sequence a restore
    would rewind) and its next CRL number is above every number published before the
    restore, also those the backup never saw (max of the stored counter and the clock)."""
    store = StoreBackup(db_url, tmp_path)
    serials: set[int] = set()
    numbers: list[int] = []

    async def work(ca: CertificateAuthority, tag: str) -> None:
        for i in range(2):
            issued = await enroll(ca, _request(f"{tag}{i}.example.com"))
            assert isinstance(issued, Issued)
            serial = issued.certificate.serial_number
            assert serial not in serials
            serials.add(serial)
        await ca.revoke(ISSUER, serial, "superseded", requester="operator")
        crl_service = CrlService(ca, crl_settings())
        for _ in range(2):
            [crl] = await crl_service.generate(ISSUER)
            assert crl.der is not None
            numbers.append(_crl_number(check_crl(crl.der, ca.issuers[ISSUER].certificate)))

    try:
        ca = await build_ca(config)
        try:
            await work(ca, "before")
            store.backup()
            await work(ca, "after-backup")
        finally:
            await ca.close()
        assert numbers == sorted(set(numbers))

        restored = replace(config, database_url=store.restore())
        ca = await build_ca(restored)
        try:
            assert (await ca.audit.verify()).ok
            await work(ca, "after-restore")  # asserts every serial is new
        finally:
            await ca.close()
        assert numbers == sorted(set(numbers)), f"CRL numbers not strictly increasing: {numbers}"
    finally:
        store.close()


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
