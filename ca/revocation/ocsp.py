"""OCSP status lookup and response signing (RFC 6960, RFC 9919 profile, RFC 8954 nonces).

Hot path: CertID -> issuer by hash -> in-process cache -> stored pre-signed response.
A signature is made on the request path only for a nonce, several CertIDs, or a
certificate without a usable stored response; those go through a token bucket.
Pre-signing happens when the feed shows an issuance or revocation, and the leader
refreshes stored responses long before their nextUpdate.

Never 'good' for what was not issued: status comes from the certificates table
through `status_of_row`, and a stored 'revoked' response is never replaced by a
'good' one (ocsp_store.upsert_responses).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from ca.clock import Clock
from ca.errors import CAError, FailureReason
from ca.issuer import Issuer
from ca.revocation import feed, ocsp_der, ocsp_store
from ca.revocation.asn1 import certificate_subject, public_key_bits
from ca.revocation.model import (
    HASH_OIDS,
    UNKNOWN,
    CertId,
    CertStatus,
    OcspAnswer,
    ResponseStatus,
    StatusQuery,
)
from ca.revocation.ocsp_cache import AnswerCache, CachedAnswer
from ca.revocation.ocsp_roots import RootAnswers
from ca.revocation.ocsp_store import CertRow, StoredResponse
from ca.revocation.ratelimit import TokenBucket
from ca.revocation.responder import RESPONDER_PROFILE, ResponderIdentity, Responders
from ca.revocation.settings import OcspSettings
from ca.revocation.signing import sign_all, signs_in_process
from ca.service import CertificateAuthority
from ca.sigalg import sign_bytes
from ca.store.repositories import serial_text

log = logging.getLogger("tetra.ocsp")

STALE_MARGIN = 300.0  # seconds before nextUpdate when a stored response is no longer served
ERRORS = {status: OcspAnswer(ocsp_der.error_response(status), status) for status in ResponseStatus if status}


@dataclass(frozen=True)
class IssuerHashes:
    """issuerNameHash and issuerKeyHash of one CA for every CertID hash (RFC 6960 §4.1.1)."""

    name: str
    name_hash: dict[str, bytes]
    key_hash: dict[str, bytes]


def issuer_hashes(issuer: Issuer) -> IssuerHashes:
    subject = certificate_subject(issuer.certificate)
    bits = public_key_bits(issuer.certificate.public_key())
    return IssuerHashes(
        issuer.name,
        {alg: hashlib.new(alg, subject).digest() for alg in HASH_OIDS},
        {alg: hashlib.new(alg, bits).digest() for alg in HASH_OIDS},
    )


class OcspService:
    def __init__(
        self,
        ca: CertificateAuthority,
        settings: OcspSettings,
        responders: Responders | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ca = ca
        self.settings = settings
        self.responders = responders or Responders(ca, settings)
        self.cache = AnswerCache(settings.cache_entries, monotonic)
        self._bucket = TokenBucket(settings.fresh_rate, settings.fresh_burst, monotonic)
        self._slots = asyncio.Semaphore(settings.fresh_concurrency)
        self._monotonic = monotonic
        self._hashes: dict[str, IssuerHashes] = {}
        self._index: dict[tuple[str, bytes, bytes], str] = {}
        self._track(list(ca.issuers))
        self._unsettled: dict[str, set[int]] = {}  # revocations seen whose responses are not re-signed yet
        self.feed_position = 0
        self.presign_issued = False  # the leader pre-signs what any process issued
        self.fresh_signatures = 0
        self.roots = RootAnswers(ca, monotonic)  # what our offline roots pre-signed about their CAs

    @property
    def clock(self) -> Clock:
        return self.ca.clock

    async def start(self, *, preload: bool | None = None) -> None:
        """Make sure every issuer has a responder, remember where the feed is, warm the cache."""
        for name in self.ca.issuers:
            await self.responders.identity(name)
        self.feed_position = await self.ca.db.read(feed.head)
        if self.settings.preload if preload is None else preload:
            await self.preload()

    async def close(self) -> None:
        await self.responders.close()

    def _track(self, names: list[str]) -> None:
        for name in names:
            hashes = self._hashes[name] = issuer_hashes(self.ca.issuers[name])
            for alg in HASH_OIDS:
                # A same-key generation shares its predecessor's CertID hashes: the first one answers.
                self._index.setdefault((alg, hashes.name_hash[alg], hashes.key_hash[alg]), name)

    async def track(self, names: list[str]) -> None:
        """Answer for issuers the CA registry added while serving (a rollover's new generation)."""
        self._track(names)
        for name in names:
            await self.responders.identity(name)

    # -- answering ------------------------------------------------------------------------
    def _issuer_of(self, query: StatusQuery) -> str | None:
        """The one CA we answer for that every CertID names, or None (unauthorized)."""
        names = set()
        for cid in query.cert_ids:
            name = self._index.get((cid.hash_alg, cid.issuer_name_hash, cid.issuer_key_hash))
            if name is None:
                return None  # RFC 6960 §2.3: not a CA we answer for
            names.add(name)
        # A delegated responder is certified by one CA only (RFC 6960 §4.2.2.2).
        return names.pop() if len(names) == 1 else None

    def answer_now(self, query: StatusQuery) -> OcspAnswer | None:
        """The answer when it needs no I/O and no signature: a refusal or a cached pre-signed
        response. None sends the query to `respond`. The plain-HTTP fast path lives on this."""
        issuer = self._issuer_of(query)
        if issuer is None:
            root = self.roots.match(query)
            return ERRORS[ResponseStatus.UNAUTHORIZED] if root is None else self.roots.answer_now(*root)
        if query.nonce is None and len(query.cert_ids) == 1:
            cid = query.cert_ids[0]
            entry = self.cache.get((issuer, cid.serial, cid.hash_alg))
            return entry.answer if entry is not None else None
        return self._sign_now(issuer, query)

    def _sign_now(self, issuer: str, query: StatusQuery) -> OcspAnswer | None:
        """A nonce or several-certificate answer signed right here when nothing needs waiting
        for: every status cached, the responder current, its key in this process (a software
        signature takes microseconds for EC, ~0.3 ms for RSA-2048, less than a thread hop and
        the GIL hand-back cost), and a token in the bucket. Else None: `respond` does it."""
        identity = self.responders.current(issuer)
        if identity is None or not signs_in_process(identity.signer):
            return None
        statuses = []
        for cid in query.cert_ids:
            entry = self.cache.get((issuer, cid.serial, cid.hash_alg))
            if entry is None or entry.status.kind == "unknown":
                return None
            statuses.append(entry.status)
        if not self._bucket.take():
            return None  # `respond` falls back to the pre-signed answer or tryLater
        tbs, produced_at, next_update = self._response_data(identity, query.cert_ids, statuses, query.nonce)
        signature = sign_bytes(identity.signer.private_key(), tbs, identity.hash_alg)
        self.fresh_signatures += 1
        der = ocsp_der.ocsp_response(tbs, identity.algorithm, signature, identity.certs)
        return OcspAnswer(der, ResponseStatus.SUCCESSFUL, produced_at, next_update)

    def _response_data(
        self,
        identity: ResponderIdentity,
        cert_ids: tuple[CertId, ...],
        statuses: list[CertStatus],
        nonce: bytes | None,
    ) -> tuple[bytes, dt.datetime, dt.datetime]:
        """tbsResponseData for a fresh answer, its producedAt and nextUpdate."""
        now = self.clock.now().replace(microsecond=0)
        this_update = now - self.settings.backdate
        next_update = min(this_update + self.settings.validity, identity.not_after)
        singles = [
            ocsp_der.single_response(cid, status, this_update, next_update)
            for cid, status in zip(cert_ids, statuses, strict=True)
        ]
        return ocsp_der.response_data(identity.responder_id, now, singles, nonce), now, next_update

    async def respond(self, query: StatusQuery) -> OcspAnswer:
        issuer = self._issuer_of(query)
        if issuer is None:
            root = self.roots.match(query)
            answer = None if root is None else await self.roots.respond(*root)
            return answer or ERRORS[ResponseStatus.UNAUTHORIZED]
        try:
            if query.nonce is None and len(query.cert_ids) == 1:
                cached = await self._presigned(issuer, query.cert_ids[0])
                if cached is not None:
                    return cached.answer
            return await self._fresh(issuer, query)
        except CAError as exc:
            log.warning("OCSP answer for %s failed: %s", issuer, exc.detail)
            if exc.reason is FailureReason.UNAVAILABLE:
                return ERRORS[ResponseStatus.TRY_LATER]
            return ERRORS[ResponseStatus.INTERNAL_ERROR]

    async def _presigned(self, issuer: str, cid: CertId) -> CachedAnswer | None:
        key = (issuer, cid.serial, cid.hash_alg)
        entry = self.cache.get(key)
        if entry is not None:
            return entry
        serial = serial_text(cid.serial)
        stored = await self.ca.db.read(lambda c: ocsp_store.stored_response(c, issuer, serial, cid.hash_alg))
        if stored is None:
            return None
        if stored.status != "revoked" and (
            self.cache.recently_revoked(issuer, cid.serial) or cid.serial in self._unsettled.get(issuer, ())
        ):
            return None  # the feed saw a revocation this row does not show yet
        entry = self._entry_from_stored(stored)
        if entry is not None:
            self.cache.put(key, entry)
        return entry

    def _entry(
        self, der: bytes, status: CertStatus, produced_at: dt.datetime, next_update: dt.datetime, ttl: float
    ) -> CachedAnswer | None:
        remaining = (next_update - self.clock.now()).total_seconds() - STALE_MARGIN
        if remaining <= 0:
            return None  # OCSP-09: nothing is served close to or after its nextUpdate
        etag = '"' + hashlib.sha256(der).hexdigest()[:32] + '"'
        # 'unknown' may turn into a real status within minutes (an issuance in flight): not for HTTP caches.
        cacheable = status.kind != "unknown"
        answer = OcspAnswer(der, ResponseStatus.SUCCESSFUL, produced_at, next_update, cacheable=cacheable, etag=etag)
        return CachedAnswer(answer, status, self._monotonic() + min(remaining, ttl))

    def _entry_from_stored(self, stored: StoredResponse) -> CachedAnswer | None:
        status = (
            CertStatus("revoked", stored.revoked_at, stored.reason)
            if stored.status == "revoked"
            else CertStatus("good")
        )
        return self._entry(stored.der, status, stored.produced_at, stored.next_update, self._ttl(status))

    def _ttl(self, status: CertStatus) -> float:
        ttl = self.settings.cache_ttl.total_seconds()
        if status.kind == "unknown":  # an issuance in flight may make it known soon
            ttl = min(ttl, self.settings.signing_grace.total_seconds())
        return ttl

    async def _fresh(self, issuer: str, query: StatusQuery) -> OcspAnswer:
        single = len(query.cert_ids) == 1
        if not self._bucket.take():
            if single:
                # RFC 8954 §2.1: a responder may answer without the nonce; a pre-signed answer
                # costs nothing, so a nonce flood degrades to it instead of to the signer.
                fallback = await self._presigned(issuer, query.cert_ids[0])
                if fallback is not None:
                    return fallback.answer
            return ERRORS[ResponseStatus.TRY_LATER]
        async with self._slots:
            statuses = await self._statuses(issuer, query.cert_ids)
            identity = await self.responders.identity(issuer)
            tbs, now, next_update = self._response_data(
                identity, query.cert_ids, [status for status, _ in statuses], query.nonce
            )
            this_update = now - self.settings.backdate
            [signature] = await sign_all(identity.signer, [tbs], identity.hash_alg)
            self.fresh_signatures += 1
            der = ocsp_der.ocsp_response(tbs, identity.algorithm, signature, identity.certs)
        if not single or query.nonce is not None:
            return OcspAnswer(der, ResponseStatus.SUCCESSFUL, now, next_update)
        cid, (status, row) = query.cert_ids[0], statuses[0]
        if row is not None and status.kind != "unknown":
            written = await self._store([(row, cid.hash_alg, status, der, this_update, next_update, now)])
            if not written:
                return OcspAnswer(der, ResponseStatus.SUCCESSFUL, now, next_update)
        entry = self._entry(der, status, now, next_update, self._ttl(status))
        if entry is None:
            return OcspAnswer(der, ResponseStatus.SUCCESSFUL, now, next_update)
        self.cache.put((issuer, cid.serial, cid.hash_alg), entry)
        return entry.answer

    async def _statuses(self, issuer: str, cert_ids: tuple[CertId, ...]) -> list[tuple[CertStatus, CertRow | None]]:
        result: list[tuple[CertStatus, CertRow | None] | None] = []
        missing = []
        for index, cid in enumerate(cert_ids):
            entry = self.cache.get((issuer, cid.serial, cid.hash_alg))
            if entry is not None and entry.status.kind != "unknown":
                result.append((entry.status, None))
            else:
                result.append(None)
                missing.append(index)
        if missing:
            serials = [serial_text(cert_ids[i].serial) for i in missing]
            rows = await self.ca.db.read(lambda c: ocsp_store.certificate_rows(c, issuer, serials))
            for index, serial in zip(missing, serials, strict=True):
                row = rows.get(serial)
                status = row.ocsp_status() if row else UNKNOWN
                result[index] = (status, row)
        return [r for r in result if r is not None]

    # -- pre-signing ------------------------------------------------------------------------
    async def presign_certificates(self, rows: list[CertRow]) -> int:
        """Pre-sign every configured CertID hash; responder certificates (ocsp-nocheck) are skipped."""
        wanted = [row for row in rows if row.profile != RESPONDER_PROFILE]
        return await self.presign([(row, alg) for row in wanted for alg in self.settings.presign_hashes])

    async def presign(self, items: list[tuple[CertRow, str]], *, cache_new: bool = True) -> int:
        """Sign and store one response per (certificate, CertID hash); returns how many were stored."""
        done = 0
        by_issuer: dict[str, list[tuple[CertRow, str]]] = {}
        for row, alg in items:
            if row.issuer in self._hashes:
                by_issuer.setdefault(row.issuer, []).append((row, alg))
        for issuer, group in by_issuer.items():
            for start in range(0, len(group), self.settings.refresh_batch):
                done += await self._presign_batch(issuer, group[start : start + self.settings.refresh_batch], cache_new)
        return done

    async def _presign_batch(self, issuer: str, group: list[tuple[CertRow, str]], cache_new: bool) -> int:
        identity = await self.responders.identity(issuer)
        hashes = self._hashes[issuer]
        now = self.clock.now().replace(microsecond=0)
        this_update = now - self.settings.backdate
        next_update = min(this_update + self.settings.validity, identity.not_after)
        work: list[tuple[CertRow, str, CertStatus, bytes]] = []
        for row, alg in group:
            status = row.ocsp_status()
            if status.kind == "unknown":
                continue  # never pre-sign for what may not exist
            cid = CertId(alg, hashes.name_hash[alg], hashes.key_hash[alg], int(row.serial, 16))
            single = ocsp_der.single_response(cid, status, this_update, next_update)
            work.append((row, alg, status, ocsp_der.response_data(identity.responder_id, now, [single])))
        if not work:
            return 0
        signatures = await sign_all(identity.signer, [w[3] for w in work], identity.hash_alg)
        records = [
            (
                row,
                alg,
                status,
                ocsp_der.ocsp_response(tbs, identity.algorithm, sig, identity.certs),
                this_update,
                next_update,
                now,
            )
            for (row, alg, status, tbs), sig in zip(work, signatures, strict=True)
        ]
        written = await self._store(records)
        for row, alg, status, der, _, nxt, produced in records:
            key = (issuer, int(row.serial, 16), alg)
            if (row.serial, alg) not in written:
                continue
            if cache_new or self.cache.get(key) is not None or status.kind == "revoked":
                entry = self._entry(der, status, produced, nxt, self._ttl(status))
                if entry is not None:
                    self.cache.put(key, entry)
        return len(written)

    async def _store(
        self, records: list[tuple[CertRow, str, CertStatus, bytes, dt.datetime, dt.datetime, dt.datetime]]
    ) -> set[tuple[str, str]]:
        rows = [
            {
                "issuer": row.issuer,
                "serial": row.serial,
                "hash_alg": alg,
                "status": status.kind,
                "revoked_at": status.revoked_at,
                "revocation_reason": status.reason,
                "cert_not_after": row.not_after,
                "der": der,
                "this_update": this_update,
                "next_update": next_update,
                "produced_at": produced_at,
            }
            for row, alg, status, der, this_update, next_update, produced_at in records
        ]
        written = await self.ca.db.write(lambda tx: ocsp_store.upsert_responses(tx, rows))
        return {(r["serial"], r["hash_alg"]) for r in written}

    # -- feed, refresh, repair -----------------------------------------------------------------
    async def poll_feed(self) -> int:
        """Read and apply what any process revoked or issued since the last poll."""
        position = self.feed_position
        events = await self.ca.db.read(lambda c: feed.events_since(c, position, (feed.REVOKED, feed.ISSUED)))
        await self.apply(events)
        if events:
            self.feed_position = events[-1].seq
        return len(events)

    async def apply(self, events: list[feed.FeedEvent]) -> None:
        """Revocations: drop cached answers at once, then re-sign (retried until it works).
        Issuances: drop cached 'unknown' answers; the leader also pre-signs them."""
        issued: dict[str, set[int]] = {}
        for event in events:
            if event.issuer not in self._hashes:
                continue
            if event.action == feed.REVOKED:
                self.cache.mark_revoked(event.issuer, event.serial)
                self._unsettled.setdefault(event.issuer, set()).add(event.serial)
            else:
                self.cache.forget(event.issuer, event.serial)
                issued.setdefault(event.issuer, set()).add(event.serial)
        try:
            await self.settle_revocations()
            if self.presign_issued:
                for issuer, serials in issued.items():
                    hexes = [serial_text(s) for s in serials]
                    rows = await self.ca.db.read(partial(ocsp_store.certificate_rows, issuer=issuer, serials=hexes))
                    await self.presign_certificates(list(rows.values()))
        except CAError as exc:
            # Unsettled revocations stay refused from the cache and are retried; missing
            # pre-signed responses are signed on demand or by the reconciler.
            log.warning("OCSP feed: could not sign yet: %s", exc.detail)

    async def settle_revocations(self) -> None:
        """Re-sign responses for revocations seen on the feed; kept until it succeeds."""
        for issuer in list(self._unsettled):
            serials = self._unsettled[issuer]
            for serial in serials:
                self.cache.mark_revoked(issuer, serial)
            await self._resign_revoked(issuer, sorted(serials))
            del self._unsettled[issuer]

    async def _resign_revoked(self, issuer: str, serials: list[int]) -> None:
        hexes = [serial_text(s) for s in serials]
        rows = await self.ca.db.read(lambda c: ocsp_store.certificate_rows(c, issuer, hexes))
        stored = await self.ca.db.read(lambda c: ocsp_store.stored_for_serials(c, issuer, hexes))
        existing: dict[str, dict[str, StoredResponse]] = {}
        for response in stored:
            existing.setdefault(response.serial, {})[response.hash_alg] = response
        items = []
        for serial, row in rows.items():
            if row.status != "revoked":
                continue
            for alg in sorted(set(self.settings.presign_hashes) | set(existing.get(serial, {}))):
                done = existing.get(serial, {}).get(alg)
                if done is not None and done.status == "revoked":
                    entry = self._entry_from_stored(done)  # another process already signed it
                    if entry is not None:
                        self.cache.put((issuer, int(serial, 16), alg), entry)
                else:
                    items.append((row, alg))
        await self.presign(items)

    async def refresh_due(self) -> int:
        """Re-sign stored responses whose thisUpdate is older than refresh_after (leader job)."""
        total = 0
        while True:
            now = self.clock.now()
            older = now - self.settings.refresh_after
            batch = self.settings.refresh_batch
            due = await self.ca.db.read(partial(ocsp_store.due_for_refresh, older_than=older, now=now, limit=batch))
            if not due:
                break
            signed = await self.presign(due, cache_new=False)
            total += signed
            if signed == 0 or len(due) < batch:
                break
        return total

    async def reconcile(self, limit: int = 10_000) -> int:
        """Repair what a crash could leave: 'good' rows of revoked certificates, and
        certificates without a pre-signed response (leader job, also at start-up)."""
        stale = await self.ca.db.read(lambda c: ocsp_store.good_but_revoked(c, limit))
        for row, _ in stale:
            self.cache.mark_revoked(row.issuer, int(row.serial, 16))
        fixed = await self.presign(stale)
        now = self.clock.now()
        for alg in self.settings.presign_hashes:
            missing = await self.ca.db.read(partial(ocsp_store.missing_responses, hash_alg=alg, now=now, limit=limit))
            fixed += await self.presign([(row, alg) for row in missing], cache_new=False)
        return fixed

    async def preload(self) -> int:
        """Fill the cache from stored responses, a page at a time (the loop stays responsive)."""
        after, loaded = 0, 0
        valid_after = self.clock.now() + dt.timedelta(seconds=STALE_MARGIN)
        while len(self.cache) < self.cache.capacity:
            page, after = await self.ca.db.read(
                partial(ocsp_store.stored_page, after_id=after, valid_after=valid_after, limit=5000)
            )
            if not page:
                break
            for stored in page:
                entry = self._entry_from_stored(stored)
                if entry is not None:
                    self.cache.put((stored.issuer, int(stored.serial, 16), stored.hash_alg), entry)
            loaded += len(page)
            await asyncio.sleep(0)
        return loaded
