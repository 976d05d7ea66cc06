"""Builds the store, signers, issuers and the CertificateAuthority from a ServerConfig."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from ca.clock import Clock
from ca.errors import ConfigError
from ca.issuer import Issuer, IssuerUrls, Linter
from ca.profiles.loader import load_profiles
from ca.service import CertificateAuthority, RegistrationAuthority
from ca.signers.base import Signer
from ca.signers.registry import open_signer
from ca.store.db import Database
from server.config import ServerConfig, load_config


def read_config(path: Path, environ: dict[str, str] | None = None) -> ServerConfig:
    """Load the config with every registered protocol's section parser."""
    from protocols.registry import PROTOCOLS

    return load_config(path, environ, {name: spec.parse_config for name, spec in PROTOCOLS.items()})


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
    from ca.lint import certificate_lint_errors

    return certificate_lint_errors


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
    config: ServerConfig, *, clock: Clock | None = None, db: Database | None = None
) -> CertificateAuthority:
    roots = [c for p in config.roots for c in load_certificates(p)]
    pool = [c for p in config.intermediates for c in load_certificates(p)]
    profiles = load_profiles(config.profiles_dir)
    if config.default_profile not in profiles:
        raise ConfigError(f"{config.source}: profiles.default: no profile named {config.default_profile!r}")
    db = db or open_database(config, clock)
    signers: dict[str, Signer] = {}
    linter = default_linter()

    async def signer(name: str) -> Signer:
        if name not in signers:
            signers[name] = await open_signer(config.signers[name])
        return signers[name]

    try:
        issuers = {}
        for name, icfg in config.issuers.items():
            cert = load_certificates(icfg.certificate)[0]
            chain = build_chain(cert, pool, roots)
            urls = IssuerUrls(icfg.crl_url, icfg.ocsp_url, icfg.ca_issuers_url)
            issuers[name] = Issuer(name, cert, chain, await signer(icfg.signer), urls, db, linter)
        ras = {}
        for name, rcfg in config.ras.items():
            ras[name] = RegistrationAuthority(name, load_certificates(rcfg.certificate)[0], await signer(rcfg.signer))
        for profile in profiles.values():
            if profile.issuer and profile.issuer not in issuers:
                raise ConfigError(f"{profile.source}: issuer: no issuer named {profile.issuer!r}")
        return CertificateAuthority(db, issuers, config.default_issuer, profiles, tuple(roots), ras=ras)
    except BaseException:
        for s in signers.values():
            await s.close()
        raise
