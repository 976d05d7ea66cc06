"""One TOML file -> a frozen, validated `ServerConfig`; fails fast naming file and key.

Every key can be overridden from the environment: TETRA_<SECTION>__<KEY>
(nested tables with more "__", e.g. TETRA_ACME__VALIDATION__HTTP_PORT=5002).
Values are read as TOML literals when they parse as one, else as strings.
Relative paths are taken from the config file's directory.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ca.digits import parse_decimal
from ca.errors import ConfigError
from ca.notices.settings import NotificationSettings, parse_notifications
from ca.signers.registry import SignerSpec, parse_signer_spec
from ca.store.db import MODES
from ca.tomlread import Table, read_toml_file
from server.discovery.settings import DiscoverySettings, parse_discovery
from server.manage.settings import ManageSettings, parse_manage

ENV_PREFIX = "TETRA_"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, where: str) -> Listen:
        host, sep, port_text = text.rpartition(":")
        port = parse_decimal(port_text, 5)
        if not sep or port is None or not host:
            raise ConfigError(f"{where}: expected HOST:PORT, got {text!r}")
        return cls(host.strip("[]"), port)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ListenerLimits:
    """How long a client may take and how many connections one address may hold, on every
    listener (server/limits.py enforces them). Without them a client sending its head a byte a
    second, or a few hundred idle connections from one address, held the server's sockets."""

    header_timeout: float = 10.0  # from a request's first byte (or a new connection) to its complete head
    body_timeout: float = 30.0  # from a complete head to the body's last byte
    keepalive_timeout: float = 75.0  # idle between requests on a kept-alive connection
    max_connections_per_address: int = 64  # open connections one client address may hold, per listener


@dataclass(frozen=True)
class IssuerConfig:
    name: str
    certificate: Path
    signer: str
    crl_url: str
    ocsp_url: str
    ca_issuers_url: str
    next_certificate: Path | None = None  # a staged next CA certificate (SCEP GetNextCACert)


@dataclass(frozen=True)
class RAConfig:
    name: str
    certificate: Path
    signer: str


@dataclass(frozen=True)
class ServerConfig:
    source: Path
    http: Listen | None
    https: Listen | None
    tls_certificate: Path | None
    tls_key: Path | None
    client_certificates: str  # none | optional
    http_url: str
    https_url: str
    protocols: tuple[str, ...]
    log_format: str
    log_level: str
    database_url: str
    database_mode: str
    database_pool_size: int
    database_timeout: float
    database_max_batch: int
    profiles_dir: Path
    default_profile: str
    roots: tuple[Path, ...]
    intermediates: tuple[Path, ...]
    default_issuer: str
    signers: dict[str, SignerSpec]  # [signers.NAME], parsed by ca.signers.registry
    issuers: dict[str, IssuerConfig]
    ras: dict[str, RAConfig]
    protocol_settings: dict[str, Any] = field(default_factory=dict)
    access_log: bool = False  # [logging] access_log: one line per HTTP request (server/requestlog.py)
    workers: int = 1  # server processes sharing the listeners (SO_REUSEPORT) and the database
    limits: ListenerLimits = ListenerLimits()
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)  # [discovery]: server/discovery/settings.py
    notifications: NotificationSettings = field(default_factory=NotificationSettings)  # ca/notices/settings.py
    manage: ManageSettings = field(default_factory=ManageSettings)  # [manage]: server/manage/settings.py


def _norm(key: str) -> str:
    return key.lower().replace("-", "_")


def apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """TETRA_SECTION__KEY=value sets data[section][key]; existing keys match case- and dash-insensitively.
    Returns each overridden dotted key with the variable that set it (errors name the variable)."""
    origins: dict[str, str] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = name[len(ENV_PREFIX) :].split("__")
        target = data
        keys: list[str] = []
        for part in path[:-1]:
            key = next((k for k in target if _norm(k) == _norm(part)), part.lower())
            keys.append(key)
            if key not in target:  # a table only the environment names
                origins.setdefault(".".join(keys), name)
            nxt = target.setdefault(key, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"environment {name}: {key} is not a table")
            target = nxt
        leaf = next((k for k in target if _norm(k) == _norm(path[-1])), path[-1].lower())
        try:
            target[leaf] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            target[leaf] = raw
        origins[".".join([*keys, leaf])] = name
    return origins


def _path(base: Path, text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else base / path


def _sqlite_relative(url: str, base: Path) -> str:
    """sqlite:///tetra.db is relative to the config file, as other paths are."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and url[len(prefix) :] not in ("", ":memory:"):
        return prefix + str(_path(base, url[len(prefix) :]))
    return url


def load_config(
    path: Path, environ: Mapping[str, str] | None = None, protocol_parsers: Mapping[str, Any] | None = None
) -> ServerConfig:
    data = read_toml_file(path, "config file")
    origins = apply_env_overrides(data, os.environ if environ is None else environ)
    return parse_config(data, path, protocol_parsers or {}, origins)


def parse_config(
    data: dict[str, Any], path: Path, protocol_parsers: Mapping[str, Any], origins: Mapping[str, str] | None = None
) -> ServerConfig:
    base = path.parent
    top = Table(data, str(path), origins=origins)

    server = top.table("server")
    http = server.get("http", str, "127.0.0.1:8080")
    https = server.get("https", str, "127.0.0.1:8443")
    tls_cert = server.get("tls_certificate", str, "")
    tls_key = server.get("tls_key", str, "")
    if https and not (tls_cert and tls_key):
        raise server.error("tls_certificate", "HTTPS needs tls_certificate and tls_key")
    client_certs = server.choice("client_certificates", ("none", "optional"), "optional")
    http_l = Listen.parse(http, server.where("http")) if http else None
    https_l = Listen.parse(https, server.where("https")) if https else None
    http_url = server.get("http_url", str, f"http://{http_l}" if http_l else "").rstrip("/")
    https_url = server.get("https_url", str, f"https://{https_l}" if https_l else "").rstrip("/")
    protocols = server.strings("protocols", [])
    workers = server.get("workers", int, 1)
    if workers < 1:
        raise server.error("workers", "workers must be at least 1")
    for name in protocols:
        if name == "api" and name not in protocol_parsers:
            raise server.error(
                "protocols", 'the operator API is now the management plane: drop "api" and set [manage] (docs/api.md)'
            )
        if name not in protocol_parsers:
            raise server.error("protocols", f"unknown protocol {name!r} (known: {', '.join(protocol_parsers)})")
    limits = _listener_limits(server)
    server.finish()

    logging_t = top.table("logging")
    log_format = logging_t.choice("format", ("text", "json"), "text")
    log_level = logging_t.choice("level", ("debug", "info", "warning", "error"), "info")
    access_log = logging_t.get("access_log", bool, False)
    logging_t.finish()

    db = top.table("database")
    db_url = _sqlite_relative(db.get("url", str, "sqlite:///tetra.db"), base)
    db_mode = db.choice("mode", MODES, "auto")
    pool = db.get("pool_size", int, 10)
    timeout = db.get("timeout_seconds", float, 15.0)
    max_batch = db.get("max_batch", int, 64)
    if pool < 1 or max_batch < 1 or timeout <= 0:
        raise db.error("pool_size", "pool_size, max_batch and timeout_seconds must be positive")
    db.finish()

    prof = top.table("profiles")
    profiles_dir = _path(base, prof.get("directory", str, "profiles"))
    default_profile = prof.get("default", str, "tls-server")
    prof.finish()

    ca_t = top.table("ca", required=True)
    roots = tuple(_path(base, p) for p in ca_t.strings("roots"))
    inters = tuple(_path(base, p) for p in ca_t.strings("intermediates", []))
    default_issuer = ca_t.get("default_issuer", str)
    ca_t.finish()

    signers: dict[str, SignerSpec] = {}
    for name, t in top.tables("signers").items():
        signers[name] = parse_signer_spec(t, name)
        t.finish()

    issuers: dict[str, IssuerConfig] = {}
    for name, t in top.tables("issuers").items():
        signer = t.get("signer", str)
        if signer not in signers:
            raise t.error("signer", f"no signer named {signer!r}")
        issuers[name] = IssuerConfig(
            name,
            _path(base, t.get("certificate", str)),
            signer,
            crl_url=t.get("crl_url", str, f"{http_url}/crl/{{issuer}}.crl" if http_url else ""),
            ocsp_url=t.get("ocsp_url", str, f"{http_url}/ocsp" if http_url else ""),
            ca_issuers_url=t.get("ca_issuers_url", str, f"{http_url}/ca/{{issuer}}.cer" if http_url else ""),
            next_certificate=_path(base, nxt) if (nxt := t.get("next_certificate", str, "")) else None,
        )
        t.finish()
    if default_issuer not in issuers:
        raise ConfigError(f"{path}: ca.default_issuer: no issuer named {default_issuer!r}")

    ras: dict[str, RAConfig] = {}
    for name, t in top.tables("ra").items():
        signer = t.get("signer", str)
        if signer not in signers:
            raise t.error("signer", f"no signer named {signer!r}")
        ras[name] = RAConfig(name, _path(base, t.get("certificate", str)), signer)
        t.finish()

    settings: dict[str, Any] = {}
    for name, parser in protocol_parsers.items():
        settings[name] = parser(top.table(name))
    discovery = parse_discovery(top.table("discovery"), base)
    notifications = parse_notifications(top.table("notifications"))
    if top.has("api"):
        raise ConfigError(f"{path}: [api] is replaced by [manage] and users' tokens (tetra token create; docs/api.md)")
    manage_t = top.table("manage")
    manage = parse_manage(manage_t)
    for name in manage.also_on:
        if (name == "http" and http_l is None) or (name == "https" and https_l is None):
            raise manage_t.error("also_on", f"the {name} listener is not configured ([server] {name})")
    top.finish()
    return ServerConfig(
        source=path,
        http=http_l,
        https=https_l,
        tls_certificate=_path(base, tls_cert) if tls_cert else None,
        tls_key=_path(base, tls_key) if tls_key else None,
        client_certificates=client_certs,
        http_url=http_url,
        https_url=https_url,
        protocols=tuple(protocols),
        log_format=log_format,
        log_level=log_level,
        access_log=access_log,
        database_url=db_url,
        database_mode=db_mode,
        database_pool_size=pool,
        database_timeout=timeout,
        database_max_batch=max_batch,
        profiles_dir=profiles_dir,
        default_profile=default_profile,
        roots=roots,
        intermediates=inters,
        default_issuer=default_issuer,
        signers=signers,
        issuers=issuers,
        ras=ras,
        protocol_settings=settings,
        workers=workers,
        limits=limits,
        discovery=discovery,
        notifications=notifications,
        manage=manage,
    )


def _listener_limits(server: Table) -> ListenerLimits:
    defaults = ListenerLimits()
    timeouts = {
        key: server.get(key, float, default)
        for key, default in (
            ("header_timeout_seconds", defaults.header_timeout),
            ("body_timeout_seconds", defaults.body_timeout),
            ("keepalive_timeout_seconds", defaults.keepalive_timeout),
        )
    }
    for key, value in timeouts.items():
        if not value > 0:
            raise server.error(key, "must be a positive number of seconds")
    per_address = server.get("max_connections_per_address", int, defaults.max_connections_per_address)
    if per_address < 1:
        raise server.error("max_connections_per_address", "must be at least 1")
    return ListenerLimits(
        header_timeout=timeouts["header_timeout_seconds"],
        body_timeout=timeouts["body_timeout_seconds"],
        keepalive_timeout=timeouts["keepalive_timeout_seconds"],
        max_connections_per_address=per_address,
    )
