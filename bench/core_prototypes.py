"""Prototypes of core changes, applied by monkeypatching inside the benchmark process only
(`bench_core.py --prototype a,b,...`). They measure what a change to the core would gain;
they are not the change. Each names the core function it stands in for.

sql-params   ca/store/repositories.py CertificateRepository.insert_intent / record_result and
             ca/audit.py append_events: execute module-level statements with bound parameters
             instead of building `insert(...).values(**values)` per call (SQLAlchemy then skips
             building ~20 BindParameters, the statement cache key and the compile-cache lookup).
batch        ca/store/db.py GroupCommitter._commit: a shared transaction runs all queued intents
             as ONE multi-row INSERT ... RETURNING (insertmanyvalues, ids in parameter order) and
             all queued results as one executemany UPDATE, instead of one statement per writer.
             Implies sql-params. A failure still falls back to one transaction per writer.
no-pre-ping  ca/store/db.py Database.__init__: pool_pre_ping=False (one round trip less per
             transaction); dead connections are then found by the first statement, which
             Database._run already turns into StoreUnavailable.
tbs-capture  ca/issuer.py throwaway_key / Issuer.lint_certificate: the twin is "signed" by a key
             object whose sign() returns a fixed, well-formed dummy signature (the builder calls
             sign() with exactly the TBS bytes), so no throwaway ECDSA/RSA signature is computed.
             The TBS and the signature AlgorithmIdentifier are unchanged (the builder derives both
             from the key type and hash, never from the key's value); pkilint does not verify the
             lint certificate's signature (it has no issuer key).
verify-once  ca/issuer.py Issuer._sign_and_check: skip the second verification when the signer
             already verified the signature against the same cached public key before returning
             it (ca/signers/pkcs11_keys.py Token*Key.sign does), i.e. for PKCS#11 signers.
builder-ctor ca/issuer.py Issuer.builder: pass all extensions to CertificateBuilder(...) at once
             instead of eleven chained add_extension() calls (each copies the builder and re-checks
             every earlier extension for duplicates); byte-identical TBS, about 41 -> 14 µs.
uvloop       server start-up: run the event loop on uvloop (needs `pip install uvloop`).
inflight-2   ca/store/db.py GroupCommitter.submit/_drain: let a second shared transaction start
             while one is in flight (once 4 writes wait), so its statements overlap the first
             one's commit; the audit head row lock still orders the two.
gc           server start-up: gc.freeze() after loading, and a young-generation threshold of
             50,000 allocations instead of 700 (issuance allocates many short-lived objects).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from sqlalchemy import bindparam, insert, select, update

APPLIED: list[str] = []


# -- sql-params ------------------------------------------------------------------------------


def _sql_params() -> None:
    import ca.audit as audit
    import ca.store.db as db
    import ca.store.repositories as repos
    from ca.store.tables import audit_head, audit_log, certificates

    insert_intent_stmt = insert(certificates).returning(certificates.c.id)
    update_by_id = update(certificates).where(certificates.c.id == bindparam("row_id_"))

    def insert_intent(tx: Any, values: dict[str, Any], event: Any) -> int:
        pending = getattr(tx, "bench_intents", None)
        if pending is not None:  # batch: run later, all at once
            pending.append((tx.bench_index, values))
            tx.audit(event)
            return -1
        result = tx.conn.execute(insert_intent_stmt, values)
        tx.audit(event)
        return int(result.scalar_one())

    def record_result(tx: Any, row_id: int, values: dict[str, Any], event: Any) -> None:
        pending = getattr(tx, "bench_results", None)
        if pending is not None:
            pending.append({"row_id_": row_id, **values})
            tx.audit(event)
            return
        tx.conn.execute(update_by_id, {"row_id_": row_id, **values})
        tx.audit(event)

    repos.CertificateRepository.insert_intent = staticmethod(insert_intent)  # type: ignore[method-assign]
    repos.CertificateRepository.record_result = staticmethod(record_result)  # type: ignore[method-assign]

    head_select = select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
    head_update = update(audit_head).where(audit_head.c.id == 1)
    head_insert = insert(audit_head)
    log_insert = insert(audit_log)
    json, event_hash = audit.json, audit.event_hash

    def append_events(conn: Any, events: Any, at: Any) -> None:
        events = list(events)
        if not events:
            return
        at = at.replace(microsecond=(at.microsecond // 1000) * 1000)
        head = conn.execute(head_select).first()
        if head is None:
            seq, prev = 0, audit.GENESIS
            conn.execute(head_insert, {"id": 1, "seq": 0, "hash": audit.GENESIS})
        else:
            seq, prev = head.seq, head.hash
        rows = []
        for event in events:
            seq += 1
            digest = event_hash(prev, seq, at, event)
            rows.append(
                {
                    "seq": seq,
                    "at": at,
                    "actor": event.actor,
                    "action": event.action,
                    "target": event.target,
                    "details": json.dumps(event.details, sort_keys=True, separators=(",", ":"), default=str),
                    "prev_hash": prev,
                    "hash": digest,
                }
            )
            prev = digest
        conn.execute(log_insert, rows)
        conn.execute(head_update, {"seq": seq, "hash": prev})

    audit.append_events = append_events
    db.append_events = append_events


# -- batch -----------------------------------------------------------------------------------


def _batch() -> None:
    import ca.store.db as db
    from ca.errors import StoreUnavailable
    from ca.store.tables import certificates

    if "sql-params" not in APPLIED:
        _sql_params()
        APPLIED.append("sql-params")
    insert_many = insert(certificates).returning(certificates.c.id, sort_by_parameter_order=True)
    update_by_id = update(certificates).where(certificates.c.id == bindparam("row_id_"))

    async def _commit(self: Any, batch: list[tuple[Callable[[Any], Any], Any]]) -> None:
        if len(batch) == 1:
            fn, future = batch[0]
            await self._settle(fn, future)
            return

        def all_of(tx: Any) -> list[Any]:
            tx.bench_intents, tx.bench_results = [], []
            out = []
            for i, (fn, _) in enumerate(batch):
                tx.bench_index = i
                out.append(fn(tx))
            intents, results = tx.bench_intents, tx.bench_results
            tx.bench_intents = tx.bench_results = None
            if intents:
                ids = tx.conn.execute(insert_many, [v for _, v in intents]).scalars().all()
                for (i, _), row_id in zip(intents, ids, strict=True):
                    out[i] = int(row_id)
            by_keys: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for params in results:
                by_keys.setdefault(tuple(sorted(params)), []).append(params)
            for group in by_keys.values():
                tx.conn.execute(update_by_id, group)
            return out

        try:
            results = await self._db.write(all_of)
        except StoreUnavailable as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except Exception:
            for fn, future in batch:
                await self._settle(fn, future)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    db.GroupCommitter._commit = _commit  # type: ignore[method-assign]


# -- no-pre-ping -------------------------------------------------------------------------------


def _no_pre_ping() -> None:
    import ca.store.db as db

    real_async, real_sync = db.create_async_engine, db.create_engine

    def create_async_engine(url: str, **kw: Any) -> Any:
        kw["pool_pre_ping"] = False
        return real_async(url, **kw)

    def create_engine(url: str, **kw: Any) -> Any:
        kw["pool_pre_ping"] = False
        return real_sync(url, **kw)

    db.create_async_engine = create_async_engine
    db.create_engine = create_engine


# -- tbs-capture -------------------------------------------------------------------------------


def _dummy_ecdsa(size: int) -> bytes:
    n = bytes([0x7F]) + b"\xa5" * (size - 1)  # positive, full length: a plausible r and s
    part = b"\x02" + bytes([len(n)]) + n
    body = part + part
    return b"\x30" + bytes([len(body)]) + body


class _CaptureEC(ec.EllipticCurvePrivateKey):
    """Signs nothing: returns a fixed DER ECDSA-Sig-Value of the curve's size."""

    def __init__(self, public: ec.EllipticCurvePublicKey) -> None:
        self._public = public
        self._sig = _dummy_ecdsa((public.curve.key_size + 7) // 8)

    def sign(self, data: Any, signature_algorithm: Any) -> bytes:
        return self._sig

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.curve.key_size

    def exchange(self, algorithm: Any, peer_public_key: Any) -> bytes:
        raise NotImplementedError

    def private_numbers(self) -> Any:
        raise NotImplementedError

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        raise NotImplementedError

    def __copy__(self) -> _CaptureEC:
        return self

    def __deepcopy__(self, memo: Any) -> _CaptureEC:
        return self


class _CaptureRSA(rsa.RSAPrivateKey):
    def __init__(self, public: rsa.RSAPublicKey) -> None:
        self._public = public
        self._sig = b"\x5a" * ((public.key_size + 7) // 8)

    def sign(self, data: Any, padding: Any, algorithm: Any) -> bytes:
        return self._sig

    def decrypt(self, ciphertext: bytes, padding: Any) -> bytes:
        raise NotImplementedError

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def private_numbers(self) -> Any:
        raise NotImplementedError

    def private_bytes(self, encoding: Any, format: Any, encryption_algorithm: Any) -> bytes:
        raise NotImplementedError

    def __copy__(self) -> _CaptureRSA:
        return self

    def __deepcopy__(self, memo: Any) -> _CaptureRSA:
        return self


def _tbs_capture() -> None:
    import ca.issuer as issuer

    real = issuer.throwaway_key

    def throwaway_key(public: Any) -> Any:
        if isinstance(public, ec.EllipticCurvePublicKey):
            return _CaptureEC(public)
        if isinstance(public, rsa.RSAPublicKey):
            return _CaptureRSA(public)
        return real(public)  # Ed25519 signing is cheap already

    issuer.throwaway_key = throwaway_key


# -- verify-once -------------------------------------------------------------------------------


def _verify_once() -> None:
    import ca.issuer as issuer
    from ca.signers.pkcs11 import Pkcs11Signer

    real_verify = issuer.verify_bytes
    real_run = Pkcs11Signer.run
    verified: dict[str, Any] = {"signature": None}

    async def run(self: Any, work: Callable[[], Any]) -> Any:
        out = await real_run(self, work)
        if isinstance(out, bytes):
            verified["signature"] = out  # Token*Key.sign verified it before returning it
        return out

    def verify_bytes(key: Any, signature: bytes, data: bytes, hash_alg: Any) -> bool:
        # The issuer verifies right after signer.run returns, with no await in between.
        if signature is verified["signature"]:
            verified["signature"] = None
            return True
        return real_verify(key, signature, data, hash_alg)

    issuer.verify_bytes = verify_bytes
    Pkcs11Signer.run = run  # type: ignore[method-assign]


# -- uvloop ------------------------------------------------------------------------------------


def _uvloop() -> None:
    import asyncio

    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# -- inflight-2 --------------------------------------------------------------------------------


def _inflight2() -> None:
    import asyncio

    import ca.store.db as db

    def submit(self: Any, fn: Callable[[Any], Any]) -> Any:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((fn, future))
        active = getattr(self, "bench_active", 0)
        # A second transaction starts only when the first is in flight and work is waiting.
        if active == 0 or (active == 1 and len(self._queue) >= 4):
            self.bench_active = active + 1
            task = loop.create_task(self._drain())
            self.bench_tasks = getattr(self, "bench_tasks", set())
            self.bench_tasks.add(task)
            task.add_done_callback(self.bench_tasks.discard)
        return future

    async def _drain(self: Any) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                await self._commit(batch)
        finally:
            self.bench_active -= 1

    db.GroupCommitter.submit = submit  # type: ignore[method-assign]
    db.GroupCommitter._drain = _drain  # type: ignore[method-assign]


# -- builder-ctor ------------------------------------------------------------------------------


def _builder_ctor() -> None:
    from cryptography.x509 import Extension

    import ca.issuer as issuer

    bc = x509.BasicConstraints(ca=False, path_length=None)

    def builder(self: Any, template: Any, serial: int) -> x509.CertificateBuilder:
        exts = [Extension(bc.oid, True, bc), Extension(template.key_usage.oid, True, template.key_usage)]
        if template.extended_key_usage:
            eku = x509.ExtendedKeyUsage(list(template.extended_key_usage))
            exts.append(Extension(eku.oid, False, eku))
        if template.subject_alt_names:
            san = x509.SubjectAlternativeName([i.to_general_name() for i in template.subject_alt_names])
            exts.append(Extension(san.oid, len(template.subject) == 0, san))
        if template.profile.policies:
            cp = x509.CertificatePolicies([x509.PolicyInformation(o, None) for o in template.profile.policies])
            exts.append(Extension(cp.oid, False, cp))
        ski = x509.SubjectKeyIdentifier.from_public_key(template.public_key)
        exts.append(Extension(ski.oid, False, ski))
        tail = self._static_extensions
        if getattr(self, "_pointers", None) is not None:
            tail = [(self._aki, False), *self._pointers(template, serial)]
        exts.extend(Extension(ext.oid, critical, ext) for ext, critical in tail)
        return x509.CertificateBuilder(
            self.certificate.subject,
            template.subject,
            template.public_key,
            serial,
            template.not_before,
            template.not_after,
            exts,
        )

    issuer.Issuer.builder = builder  # type: ignore[method-assign]


# -- gc ----------------------------------------------------------------------------------------


def _gc() -> None:
    import gc

    gc.collect()
    gc.freeze()  # start-up objects (profiles, keys, SQLAlchemy metadata) never scanned again
    gc.set_threshold(50_000, 20, 20)


PROTOTYPES: dict[str, Callable[[], None]] = {
    "sql-params": _sql_params,
    "batch": _batch,
    "no-pre-ping": _no_pre_ping,
    "tbs-capture": _tbs_capture,
    "verify-once": _verify_once,
    "uvloop": _uvloop,
    "gc": _gc,
    "inflight-2": _inflight2,
    "builder-ctor": _builder_ctor,
}


def apply(names: list[str]) -> None:
    for name in names:
        if name not in PROTOTYPES:
            raise SystemExit(f"unknown prototype {name!r} (known: {', '.join(PROTOTYPES)})")
        if name not in APPLIED:
            PROTOTYPES[name]()
            APPLIED.append(name)


_ = (x509, ed25519)
