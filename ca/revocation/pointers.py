"""Where each certificate says to look for its status: CRL DP, Freshest CRL, AIA.

With partitioned CRLs the partition is serial mod N, with N fixed per issuer at
first use (crl_layout), so it is baked into the CRL distribution point at issuance
and never moves (Boulder-style sharding, CRL-06). The delegated OCSP responder's
own certificate points nowhere and carries id-pkix-ocsp-nocheck instead
(RFC 6960 §4.2.2.2.1; BR 7.1.2.8: no AIA caIssuers, no CRL DP needed).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ca.issuer import Issuer, PointerExtensions
from ca.profiles.policy import CertificateTemplate
from ca.revocation.responder import RESPONDER_PROFILE
from ca.revocation.settings import CrlSettings
from ca.revocation.tables import crl_layout
from ca.service import CertificateAuthority
from ca.store.db import Database, Tx

log = logging.getLogger("tetra.crl")

FULL = "full"


def partition_scope(index: int) -> str:
    return f"part-{index}"


def scope_index(scope: str) -> int | None:
    return None if scope == FULL else int(scope.removeprefix("part-"))


@dataclass(frozen=True)
class CrlUrls:
    """URLs of one issuer's CRLs, derived from its configured CRL URL:
    <base>.crl (complete), <base>/delta.crl, <base>/<n>.crl, <base>/<n>-delta.crl."""

    full: str

    @property
    def _base(self) -> str:
        return self.full[: -len(".crl")] if self.full.endswith(".crl") else self.full.rstrip("/")

    def complete(self, scope: str) -> str:
        index = scope_index(scope)
        return self.full if index is None else f"{self._base}/{index}.crl"

    def delta(self, scope: str) -> str:
        index = scope_index(scope)
        return f"{self._base}/delta.crl" if index is None else f"{self._base}/{index}-delta.crl"


def scope_of(serial: int, partitions: int) -> str:
    return FULL if partitions <= 1 else partition_scope(serial % partitions)


def pointer_extensions(issuer: Issuer, partitions: int, delta: bool) -> PointerExtensions:
    urls = CrlUrls(issuer.urls.crl) if issuer.urls.crl else None
    access = []
    if issuer.urls.ocsp:
        access.append(
            x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(issuer.urls.ocsp))
        )
    if issuer.urls.ca_issuers:
        access.append(
            x509.AccessDescription(
                AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(issuer.urls.ca_issuers)
            )
        )
    aia = x509.AuthorityInformationAccess(access) if access else None

    def pointers(template: CertificateTemplate, serial: int) -> list[tuple[x509.ExtensionType, bool]]:
        if template.profile.name == RESPONDER_PROFILE:
            return [(x509.OCSPNoCheck(), False)]
        exts: list[tuple[x509.ExtensionType, bool]] = []
        if urls is not None:
            scope = scope_of(serial, partitions)
            point = x509.DistributionPoint([x509.UniformResourceIdentifier(urls.complete(scope))], None, None, None)
            exts.append((x509.CRLDistributionPoints([point]), False))
            if delta:
                fresh = x509.DistributionPoint([x509.UniformResourceIdentifier(urls.delta(scope))], None, None, None)
                exts.append((x509.FreshestCRL([fresh]), False))
        if aia is not None:
            exts.append((aia, False))
        return exts

    return pointers


async def load_layout(db: Database, issuers: list[str], partitions: int, now: dt.datetime) -> dict[str, int]:
    """Partitions per issuer: the stored number, or the configured one stored now."""

    def read(conn: Connection) -> dict[str, int]:
        rows = conn.execute(select(crl_layout.c.issuer, crl_layout.c.partitions))
        return {row.issuer: int(row.partitions) for row in rows}

    layout = await db.read(read)
    for name in issuers:
        if name in layout:
            if layout[name] != partitions:
                log.warning(
                    "issuer %s keeps %d CRL partitions (config says %d): issued certificates "
                    "already name their partition",
                    name,
                    layout[name],
                    partitions,
                )
            continue

        def write(tx: Tx, issuer: str = name) -> None:
            tx.conn.execute(insert(crl_layout).values(issuer=issuer, partitions=partitions, created_at=now))

        try:
            await db.write(write)
        except IntegrityError:
            pass  # another process stored it first
    return {**await db.read(read)}


async def install_pointers(ca: CertificateAuthority, settings: CrlSettings) -> dict[str, int]:
    """Give every issuer its per-certificate CRL DP / Freshest CRL / AIA; returns the layout."""
    layout = await load_layout(ca.db, list(ca.issuers), settings.partitions, ca.clock.now())
    for name, issuer in ca.issuers.items():
        issuer.set_pointer_extensions(pointer_extensions(issuer, layout.get(name, 1), settings.delta))
    return layout
