"""CRL generation (RFC 5280 §5): complete, partitioned and delta CRLs per issuer.

One generation reads the issuer's whole revoked list in id-ordered pages, encodes
each entry once (shared by the full CRL and its partition), reserves the CRL
numbers in one transaction, then for each scope lints a throwaway-key copy, signs
the TBS through the issuer's signer, checks the signature and publishes.
Readers only ever see published rows, so a crash mid-way never exposes a partial
CRL, and a reserved number is never reused for other content (ST-14).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from ca.activity import Event, log_event
from ca.errors import CAError, InternalError, SignerUnavailable
from ca.files import replace_atomically
from ca.issuer import Issuer, throwaway_key
from ca.revocation import asn1, crl_store, feed
from ca.revocation.crl_der import CrlFrame, EntryEncoder, crl_extensions, tbs_cert_list
from ca.revocation.crl_store import CrlRecord, RevokedEntry
from ca.revocation.pointers import FULL, CrlUrls, load_layout, partition_scope, scope_index
from ca.revocation.settings import CrlSettings
from ca.revocation.signing import algorithm_identifier, sign_all, signature_hash
from ca.service import CertificateAuthority
from ca.sigalg import sign_bytes, verify_bytes
from ca.store.db import Tx

PAGE = 20_000  # revoked rows per read: the event loop gets a turn between pages
COMPLETE = "complete"
DELTA = "delta"


@dataclass
class _Served:
    record: CrlRecord
    checked: float


class CrlService:
    def __init__(self, ca: CertificateAuthority, settings: CrlSettings) -> None:
        self.ca = ca
        self.settings = settings
        self.layout: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._served: dict[tuple[str, str, str], _Served] = {}

    async def start(self) -> None:
        self.layout = await load_layout(
            self.ca.db, list(self.ca.issuers), self.settings.partitions, self.ca.clock.now()
        )

    def scopes(self, issuer: str) -> list[str]:
        partitions = self.layout.get(issuer, 1)
        return [FULL] + ([partition_scope(k) for k in range(partitions)] if partitions > 1 else [])

    def urls(self, issuer: str) -> CrlUrls | None:
        url = self.ca.issuers[issuer].urls.crl
        return CrlUrls(url) if url else None

    # -- generation ---------------------------------------------------------------------------
    async def generate(self, issuer_name: str) -> list[CrlRecord]:
        """Complete CRLs for every scope of the issuer (then deltas on top, if enabled)."""
        if not self.layout:
            await self.start()
        lock = self._locks.setdefault(issuer_name, asyncio.Lock())
        async with lock:
            published = await self._generate_complete(issuer_name)
            if self.settings.delta:
                published += await self._generate_deltas(issuer_name)
        return published

    async def generate_deltas(self, issuer_name: str) -> list[CrlRecord]:
        if not self.layout:
            await self.start()
        lock = self._locks.setdefault(issuer_name, asyncio.Lock())
        async with lock:
            return await self._generate_deltas(issuer_name)

    async def _generate_complete(self, name: str) -> list[CrlRecord]:
        now = self.ca.clock.now().replace(microsecond=0)
        watermark = await self.ca.db.read(feed.head)  # before reading: everything up to here is listed
        cutoff = now - self.settings.expired_grace
        partitions = self.layout.get(name, 1)
        encoder = EntryEncoder()
        full: list[bytes] = []
        parts: list[list[bytes]] = [[] for _ in range(partitions)] if partitions > 1 else []
        after = 0
        while True:
            page, after = await self.ca.db.read(
                partial(crl_store.revoked_page, issuer=name, not_after_from=cutoff, after_id=after, limit=PAGE)
            )
            self._encode(encoder, page, full, parts)
            if len(page) < PAGE:
                break
        scoped = [(FULL, full)] + [(partition_scope(k), parts[k]) for k in range(len(parts))]
        return await self._publish(name, COMPLETE, scoped, now, now + self.settings.validity, watermark, {}, encoder)

    @staticmethod
    def _encode(encoder: EntryEncoder, page: list[RevokedEntry], full: list[bytes], parts: list[list[bytes]]) -> None:
        count = len(parts)
        for serial, revoked_at, reason, invalidity in page:
            entry = encoder.encode(serial, revoked_at, reason, invalidity)
            full.append(entry)
            if count:
                parts[int(serial, 16) % count].append(entry)

    async def _generate_deltas(self, name: str) -> list[CrlRecord]:
        """Delta CRLs (RFC 5280 §5.2.4): what was revoked after each scope's base CRL."""
        now = self.ca.clock.now().replace(microsecond=0)
        watermark = await self.ca.db.read(feed.head)
        cutoff = now - self.settings.expired_grace
        partitions = self.layout.get(name, 1)
        bases: dict[str, CrlRecord] = {}
        for scope in self.scopes(name):
            base = await self.ca.db.read(
                partial(crl_store.latest, issuer=name, scope=scope, kind=COMPLETE, with_der=False)
            )
            if base is not None:
                bases[scope] = base
        if not bases:
            return []
        since = min(b.watermark for b in bases.values())
        revoked = await self.ca.db.read(
            partial(crl_store.revoked_since, issuer=name, after_seq=since, not_after_from=cutoff)
        )
        encoder = EntryEncoder()
        scoped = []
        for scope in bases:
            index = scope_index(scope)
            chosen = [r for r in revoked if index is None or int(r[0], 16) % partitions == index]
            scoped.append((scope, [encoder.encode(*r) for r in chosen]))
        numbers = {scope: base.number for scope, base in bases.items()}
        return await self._publish(
            name, DELTA, scoped, now, now + self.settings.delta_validity, watermark, numbers, encoder
        )

    async def _publish(
        self,
        name: str,
        kind: str,
        scoped: list[tuple[str, list[bytes]]],
        this_update: dt.datetime,
        next_update: dt.datetime,
        watermark: int,
        base_numbers: dict[str, int],
        encoder: EntryEncoder,
    ) -> list[CrlRecord]:
        issuer = self.ca.issuers[name]
        now = self.ca.clock.now()

        def reserve_all(tx: Tx) -> list[tuple[int, int]]:
            return [
                crl_store.reserve(
                    tx,
                    name,
                    scope,
                    kind,
                    base_number=base_numbers.get(scope),
                    watermark=watermark,
                    entries=len(entries),
                    this_update=this_update,
                    next_update=next_update,
                    now=now,
                )
                for scope, entries in scoped
            ]

        reserved = await self.ca.db.write(reserve_all)
        published = []
        try:
            for (scope, entries), (row_id, number) in zip(scoped, reserved, strict=True):
                frame = self._frame(issuer, scope, kind, number, base_numbers.get(scope), this_update, next_update)
                der = await self._sign(issuer, row_id, frame, entries, encoder)
                digest = hashlib.sha256(der).hexdigest()
                await self.ca.db.write(
                    partial(crl_store.publish, row_id=row_id, der=der, sha256=digest, now=now, keep=self.settings.keep)
                )
                await self._write_file(name, scope, kind, der)
                record = CrlRecord(
                    row_id,
                    name,
                    scope,
                    kind,
                    number,
                    base_numbers.get(scope),
                    watermark,
                    len(entries),
                    this_update,
                    next_update,
                    digest,
                    der,
                )
                published.append(record)
                self._served[(name, scope, kind)] = _Served(record, time.monotonic())  # this process: at once
                log_event(
                    Event.CRL_PUBLISHED,
                    issuer=name,
                    kind=kind,
                    scope=scope,
                    number=number,
                    entries=len(entries),
                    next_update=next_update.isoformat(),
                )
        except BaseException:
            done = {r.id for r in published}
            left = [row_id for row_id, _ in reserved if row_id not in done]
            try:
                await self.ca.db.write(lambda tx: crl_store.mark_failed(tx, left))
            except CAError:
                pass  # they stay 'building' and are marked failed by a later publication
            raise
        return published

    def _frame(
        self,
        issuer: Issuer,
        scope: str,
        kind: str,
        number: int,
        base_number: int | None,
        this_update: dt.datetime,
        next_update: dt.datetime,
    ) -> CrlFrame:
        public = issuer.signer.public_key()
        urls = self.urls(issuer.name)
        partitioned = scope != FULL
        aki = issuer.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        extensions = crl_extensions(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(aki),
            number,
            base_number=base_number if kind == DELTA else None,
            scope_url=urls.complete(scope) if urls is not None and partitioned else None,
            freshest_url=urls.delta(scope) if urls is not None and self.settings.delta and kind == COMPLETE else None,
        )
        return CrlFrame(
            issuer=asn1.certificate_subject(issuer.certificate),
            algorithm=algorithm_identifier(public, signature_hash(public)),
            this_update=this_update,
            next_update=next_update,
            extensions=extensions,
        )

    async def _sign(
        self, issuer: Issuer, row_id: int, frame: CrlFrame, entries: list[bytes], encoder: EntryEncoder
    ) -> bytes:
        public = issuer.signer.public_key()
        hash_alg = signature_hash(public)
        if self.settings.lint != "none":
            # A CRL that fits the sample is linted as it is, so the signed TBS is the linted one
            # (SEC-04); a longer one through a sample with one entry of each shape.
            sample = entries
            if len(entries) > self.settings.lint_sample:
                sample = entries[: self.settings.lint_sample] + list(encoder.examples.values())
            await self._lint(public, hash_alg, frame, sample)
        tbs = tbs_cert_list(frame, entries)
        await self.ca.db.write(partial(crl_store.record_tbs, row_id=row_id, tbs=tbs))
        [signature] = await sign_all(issuer.signer, [tbs], hash_alg)
        # docs/reliability.md, demand 11: whatever key signed, the published CRL verifies with the CA key.
        if not verify_bytes(public, signature, tbs, hash_alg):
            raise SignerUnavailable(f"issuer {issuer.name}: CRL signature does not verify")
        return asn1.signed(tbs, frame.algorithm, signature)

    async def _lint(
        self,
        public: CertificateIssuerPublicKeyTypes,
        hash_alg: hashes.HashAlgorithm | None,
        frame: CrlFrame,
        sample: list[bytes],
    ) -> None:
        """docs/reliability.md, demand 2: lint a throwaway-key twin before the CA key signs; with many
        entries the twin carries a sample (the first ones plus one of each entry shape)."""
        from ca.lint import format_findings, lint_crl

        tbs = tbs_cert_list(frame, sample)
        twin = asn1.signed(tbs, frame.algorithm, sign_bytes(throwaway_key(public), tbs, hash_alg))
        profile = {"pkix": "pkix", "cabf": "cabf"}[self.settings.lint]
        findings = await asyncio.get_running_loop().run_in_executor(None, lambda: lint_crl(twin, profile=profile))
        if findings:
            raise InternalError(f"CRL lint ({profile}) refused: {format_findings(findings)}")

    async def _write_file(self, issuer: str, scope: str, kind: str, der: bytes) -> None:
        """CRL-08: readers of the directory see the old file or the new one, never half."""
        if not self.settings.publish_dir:
            return
        index = scope_index(scope)
        stem = issuer if index is None else f"{issuer}/{index}"
        if kind == DELTA:
            stem = f"{issuer}/delta" if index is None else f"{issuer}/{index}-delta"
        target = Path(self.settings.publish_dir) / f"{stem}.crl"

        def write() -> None:
            replace_atomically(target, der)

        await asyncio.get_running_loop().run_in_executor(None, write)

    # -- schedule -------------------------------------------------------------------------------
    async def due(self) -> dict[str, str]:
        """Issuers whose CRLs need regenerating now: 'complete' (all scopes) or 'delta'."""
        now = self.ca.clock.now()
        due: dict[str, str] = {}
        for name in self.ca.issuers:
            for scope in self.scopes(name):
                record = await self.ca.db.read(
                    partial(crl_store.latest, issuer=name, scope=scope, kind=COMPLETE, with_der=False)
                )
                if record is None or record.this_update <= now - self.settings.interval:
                    due[name] = COMPLETE
                    break
            if name in due or not self.settings.delta:
                continue
            record = await self.ca.db.read(
                partial(crl_store.latest, issuer=name, scope=FULL, kind=DELTA, with_der=False)
            )
            if record is None or record.this_update <= now - self.settings.delta_interval:
                due[name] = DELTA
        return due

    # -- serving ------------------------------------------------------------------------------------
    async def fetch(self, issuer: str, scope: str, kind: str) -> CrlRecord | None:
        """The newest published CRL, from memory when the store has nothing newer (checked
        at most once a second, so every process serves a new CRL within a second)."""
        key = (issuer, scope, kind)
        served = self._served.get(key)
        now = time.monotonic()
        if served is not None and now - served.checked < 1.0:
            return served.record
        meta = await self.ca.db.read(partial(crl_store.latest, issuer=issuer, scope=scope, kind=kind, with_der=False))
        if meta is None:
            return None
        if served is None or served.record.number != meta.number:
            record = await self.ca.db.read(
                partial(crl_store.latest, issuer=issuer, scope=scope, kind=kind, with_der=True)
            )
            if record is None:
                return None
            served = _Served(record, now)
            self._served[key] = served
        served.checked = now
        return served.record
