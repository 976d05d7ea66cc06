"""The CA registry in a running server or command: the config's CAs registered once, every
registered generation turned into an `Issuer`, and the registry re-read while serving.

The config names the first generation of each CA (``[issuers.NAME]``, ``[ca] roots``); the
registry (ca/authorities) holds those and every generation made since by `tetra ca rollover`,
`ca csr`/`ca import` and root rollovers. `RegistryLoader.sync` is what start-up and the
server's watch job call: a generation added by a command in another process is opened here
within a second, and a scheduled activation is known before its time comes (CAL-06).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding

from ca.authorities.lineage import key_owner
from ca.authorities.model import Authority, Kind
from ca.authorities.store import AuthorityStore
from ca.errors import CAError, ConfigError
from ca.issuer import Issuer, IssuerUrls, Linter
from ca.service import CertificateAuthority
from ca.signers.base import Signer
from ca.signers.registry import SignerSpec, open_signer
from ca.signers.unopened import UnopenedSigner
from ca.store.db import Database
from server.config import ServerConfig

log = logging.getLogger("tetra.registry")

# server/wiring.build_chain: (CA certificate, certificates to pick from, roots) -> chain without the root
ChainBuilder = Callable[
    [x509.Certificate, list[x509.Certificate], list[x509.Certificate]], tuple[x509.Certificate, ...]
]


def root_names(config: ServerConfig, load: Callable[[Path], list[x509.Certificate]]) -> dict[str, x509.Certificate]:
    """The config's roots by registry name: the file stem (``ca/root.pem`` is ``root``)."""
    named: dict[str, x509.Certificate] = {}
    for path in config.roots:
        for i, cert in enumerate(load(path)):
            named[path.stem if i == 0 else f"{path.stem}-{i + 1}"] = cert
    return named


def parent_of(cert: x509.Certificate, candidates: dict[str, x509.Certificate]) -> str | None:
    """The registry name of the CA whose key signed ``cert`` (None: not one we know)."""
    for name, parent in candidates.items():
        if parent.subject == cert.issuer and parent != cert:
            try:
                cert.verify_directly_issued_by(parent)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return name
    return None


def config_authorities(
    config: ServerConfig, load: Callable[[Path], list[x509.Certificate]], now: dt.datetime
) -> list[Authority]:
    """Generation 1 of every CA the config names, as the registry records it."""
    roots = root_names(config, load)
    records = [
        Authority(name, name, 1, Kind.ROOT, None, cert.public_bytes(Encoding.DER), None, cert.not_valid_before_utc, now)
        for name, cert in roots.items()
    ]
    for name, icfg in config.issuers.items():
        cert = load(icfg.certificate)[0]
        der = cert.public_bytes(Encoding.DER)
        parent = parent_of(cert, roots)
        records.append(Authority(name, name, 1, Kind.ISSUING, parent, der, None, cert.not_valid_before_utc, now))
    return records


class RegistryLoader:
    """Opens each registered generation's key once and builds its Issuer."""

    def __init__(
        self,
        config: ServerConfig,
        db: Database,
        linter: Linter,
        chain_of: ChainBuilder,
        config_roots: tuple[x509.Certificate, ...],
        config_pool: list[x509.Certificate],
        *,
        open_signers: bool = True,
        signers: dict[str, Signer] | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.store = AuthorityStore(db)
        self.linter = linter
        self.chain_of = chain_of
        self.config_roots = config_roots
        self.config_pool = config_pool
        self.open_signers = open_signers
        # By signer name, shared with whoever opened the config's signers: a generation that uses
        # its CA's configured key shares the Signer already open for it.
        self.signers: dict[str, Signer] = signers if signers is not None else {}
        self.failed: dict[str, str] = {}  # generation -> why its key did not open (logged once)

    async def signer(self, spec: SignerSpec, public: CertificateIssuerPublicKeyTypes) -> Signer:
        if not self.open_signers:
            return UnopenedSigner(spec.name, public)
        if spec.name not in self.signers:
            self.signers[spec.name] = await open_signer(spec)
        return self.signers[spec.name]

    def _spec(self, record: Authority) -> SignerSpec:
        family = self.config.issuers.get(record.family)
        if record.key is not None:
            spec = record.key.spec(record.name, self.config.source.parent)
            if family is not None:  # a new key of a configured CA: unlocked the way the first one is
                base = self.config.signers[family.signer]
                spec = replace(spec, timeout_seconds=base.timeout_seconds)
            return spec
        if family is None:
            raise ConfigError(f"CA {record.name}: no key location in the registry and none in the config")
        return self.config.signers[family.signer]

    def _urls(self, family: str) -> IssuerUrls:
        icfg = self.config.issuers.get(family)
        if icfg is not None:
            return IssuerUrls(icfg.crl_url, icfg.ocsp_url, icfg.ca_issuers_url)
        base = self.config.http_url
        if not base:
            return IssuerUrls()
        return IssuerUrls(f"{base}/crl/{{issuer}}.crl", f"{base}/ocsp", f"{base}/ca/{{issuer}}.cer")

    def roots(self, records: list[Authority]) -> tuple[x509.Certificate, ...]:
        """The config's roots and every registered root generation not revoked, once each."""
        out = list(self.config_roots)
        seen = {c.public_bytes(Encoding.DER) for c in out}
        for r in records:
            if r.kind is Kind.ROOT and r.der is not None and r.revoked_at is None and r.der not in seen:
                seen.add(r.der)
                out.append(r.certificate)
        return tuple(out)

    async def issuers(
        self, records: list[Authority], loaded: dict[str, Issuer], roots: tuple[x509.Certificate, ...]
    ) -> dict[str, Issuer]:
        """Issuers for the certified issuing generations not in ``loaded``. A generation whose key
        cannot be opened is skipped (and named in the log) so the others keep serving."""
        pool = list(self.config_pool)
        pool += [r.certificate for r in records if r.der is not None and r.kind is Kind.ISSUING]
        pool += [c for r in records for c in (*r.chain, *r.links)]
        new: dict[str, Issuer] = {}
        family = {r.family: [m for m in records if m.family == r.family] for r in records}
        for record in records:
            if record.kind is not Kind.ISSUING or record.der is None or record.name in loaded:
                continue
            if key_owner(record, family[record.family]) != record.name:
                continue  # a same-key generation: a new certificate for an issuer already here
            cert = record.certificate
            try:
                chain = self.chain_of(cert, pool, list(roots)) if not record.chain else (cert, *record.chain)
                spec = self._spec(record)
                signer = await self.signer(spec, cast(CertificateIssuerPublicKeyTypes, cert.public_key()))
                urls = self._urls(record.family)
                new[record.name] = Issuer(record.name, cert, chain, signer, urls, self.db, self.linter)
            except (CAError, ConfigError) as exc:
                why = getattr(exc, "detail", str(exc))
                if self.failed.get(record.name) != why:
                    log.error("CA %s not loaded: %s", record.name, why)
                self.failed[record.name] = why
        return new

    async def register_config(self, now: dt.datetime, load: Callable[[Path], list[x509.Certificate]]) -> None:
        for record in config_authorities(self.config, load, now):
            await self.store.ensure(record)

    async def sync(self, ca: CertificateAuthority) -> list[str]:
        """Read the registry and hand it to ``ca``; returns the generations newly loaded."""
        records = await self.store.all()
        roots = self.roots(records)
        new = await self.issuers(records, ca.issuers, roots)
        ca.adopt(records, new, roots)
        return list(new)

    async def close(self) -> None:
        for signer in self.signers.values():
            await signer.close()
