"""Builds the store, signers, issuers, the CertificateAuthority, the revocation services and
each protocol's context from a ServerConfig: the one place the server's parts are put together."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from ca.clock import Clock
from ca.errors import ConfigError, StoreUnavailable
from ca.interface import RegistrationAuthority
from ca.issuer import Issuer, IssuerUrls, Linter
from ca.profiles.loader import load_profiles
from ca.revocation.crl import CrlService
from ca.revocation.ocsp import OcspService
from ca.revocation.settings import CrlSettings, OcspSettings
from ca.service import CertificateAuthority
from ca.signers.base import Signer
from ca.signers.registry import open_signer
from ca.signers.unopened import UnopenedSigner
from ca.store.db import Database
from ca.tomlread import Table
from protocols.base import ProtocolContext, RevocationServices
from protocols.labels import ProfileLabels
from protocols.registry import PROTOCOLS
from server.ca_registry import RegistryLoader
from server.config import ServerConfig, load_config

log = logging.getLogger("tetra.wiring")


def read_config(path: Path, environ: dict[str, str] | None = None) -> ServerConfig:
    """Load the config with every registered protocol's section parser."""
    return load_config(path, environ, {name: spec.parse_config for name, spec in PROTOCOLS.items()})


def crl_settings(config: ServerConfig) -> CrlSettings:
    settings = config.protocol_settings.get("crl")
    return settings if isinstance(settings, CrlSettings) else CrlSettings()


def ocsp_settings(config: ServerConfig) -> OcspSettings:
    settings = config.protocol_settings.get("ocsp")
    return settings if isinstance(settings, OcspSettings) else OcspSettings()


def build_revocation(ca: CertificateAuthority, config: ServerConfig) -> RevocationServices:
    """The OCSP responder and CRL generator, once per process, for the protocols that serve
    them (handlers) and the jobs that keep them fresh (server/jobs.py)."""
    ocsp = OcspService(ca, ocsp_settings(config)) if "ocsp" in config.protocols else None
    crl = CrlService(ca, crl_settings(config)) if "crl" in config.protocols else None
    return RevocationServices(ocsp, crl)


def protocol_context(
    name: str, ca: CertificateAuthority, config: ServerConfig, revocation: RevocationServices | None = None
) -> ProtocolContext[Any]:
    """What protocol ``name`` is handed: by the server for its handlers and jobs, by the CLI for
    its commands."""
    spec = PROTOCOLS[name]
    settings = config.protocol_settings.get(name)
    if settings is None:
        settings = spec.parse_config(Table({}, f"{config.source} [{name}]"))
    default = config.default_profile
    labels = ProfileLabels(name, lambda: ca.profiles, spec.path_labels(settings), default)
    return ProtocolContext(
        name=name,
        core=ca,
        config=settings,
        labels=labels,
        default_profile=default,
        config_dir=config.source.parent,
        http_url=config.http_url,
        https_url=config.https_url,
        revocation=revocation or RevocationServices(),
    )


def load_certificates(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read certificate: {exc.strerror}") from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{path}: not a PEM certificate") from None


def build_chain(
    leaf_ca: x509.Certificate, pool: list[x509.Certificate], roots: list[x509.Certificate]
) -> tuple[x509.Certificate, ...]:
    """The issuing CA and the intermediates above it, up to (not including) a root."""
    root_subjects = {r.subject for r in roots}
    chain = [leaf_ca]
    current = leaf_ca
    for _ in range(8):
        if current.issuer in root_subjects or current.issuer == current.subject:
            return tuple(chain)
        parent = next((c for c in pool if c.subject == current.issuer), None)
        if parent is None:
            raise ConfigError(f"no certificate for {current.issuer.rfc4514_string()} among intermediates")
        chain.append(parent)
        current = parent
    raise ConfigError("CA chain longer than 8")


def default_linter() -> Linter:
    """pkilint takes most of a second to import: a command that never signs (listing the
    inventory, a refused request) should not pay for it, so it is loaded at the first lint
    (the server warms it up at start, server/app.py)."""

    def lint(der: bytes, profile: str) -> list[str]:
        from ca.lint import certificate_lint_errors

        return certificate_lint_errors(der, profile)

    return lint


def open_database(config: ServerConfig, clock: Clock | None = None) -> Database:
    return Database(
        config.database_url,
        mode=config.database_mode,
        pool_size=config.database_pool_size,
        timeout=config.database_timeout,
        max_batch=config.database_max_batch,
        clock=clock,
    )


async def build_ca(
    config: ServerConfig, *, clock: Clock | None = None, db: Database | None = None, open_signers: bool = True
) -> CertificateAuthority:
    """The CA the config describes. ``open_signers=False`` is for commands that only read the
    store: no key is opened, so no PIN or passphrase is asked for (ca/signers/unopened.py)."""
    roots = [c for p in config.roots for c in load_certificates(p)]
    pool = [c for p in config.intermediates for c in load_certificates(p)]
    profiles = load_profiles(config.profiles_dir)
    if config.default_profile not in profiles:
        raise ConfigError(f"{config.source}: profiles.default: no profile named {config.default_profile!r}")
    db = db or open_database(config, clock)
    signers: dict[str, Signer] = {}
    linter = default_linter()

    async def signer(name: str, cert: x509.Certificate) -> Signer:
        if not open_signers:
            return UnopenedSigner(name, cast(CertificateIssuerPublicKeyTypes, cert.public_key()))
        if name not in signers:
            signers[name] = await open_signer(config.signers[name])
        return signers[name]

    try:
        issuers = {}
        next_certificates = {}
        for name, icfg in config.issuers.items():
            cert = load_certificates(icfg.certificate)[0]
            chain = build_chain(cert, pool, roots)
            urls = IssuerUrls(icfg.crl_url, icfg.ocsp_url, icfg.ca_issuers_url)
            issuers[name] = Issuer(name, cert, chain, await signer(icfg.signer, cert), urls, db, linter)
            if icfg.next_certificate is not None:
                next_certificates[name] = load_certificates(icfg.next_certificate)[0]
        ras = {}
        for name, rcfg in config.ras.items():
            ra_cert = load_certificates(rcfg.certificate)[0]
            ras[name] = RegistrationAuthority(name, ra_cert, await signer(rcfg.signer, ra_cert))
        ca = CertificateAuthority(
            db, issuers, config.default_issuer, profiles, tuple(roots), ras=ras, next_certificates=next_certificates
        )
        # The registry (server/ca_registry.py): the config's CAs registered once, then every
        # generation made since loaded beside them, sharing the keys opened above.
        loader = RegistryLoader(
            config, db, linter, build_chain, tuple(roots), pool, open_signers=open_signers, signers=signers
        )
        try:
            await loader.register_config(db.clock.now(), load_certificates)
            await loader.sync(ca)
        except StoreUnavailable as exc:  # serve the config's CAs; the server's watch reads it later
            log.warning("CA registry not read: %s", exc.detail)
        ca.sync_registry = partial(loader.sync, ca)
        for profile in profiles.values():
            if profile.issuer and profile.issuer not in ca.ca_names:
                raise ConfigError(f"{profile.source}: issuer: no issuer named {profile.issuer!r}")
        return ca
    except BaseException:
        for s in signers.values():
            await s.close()
        raise
