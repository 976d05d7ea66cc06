"""The [acme] config section, read strictly (unknown keys are errors, as everywhere)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ca.digits import parse_decimal
from ca.tomlread import Table


@dataclass(frozen=True)
class ValidationConfig:
    """[acme.validation]: where the validation authority looks. Tests point it at loopback."""

    http_port: int = 80
    tls_port: int = 443
    resolver: tuple[str, int] | None = None  # None: the system resolver
    timeout: float = 10.0
    caa: bool = False
    caa_recheck_seconds: int = 8 * 3600  # CA/B Forum BR 3.2.2.8: CAA at most 8 h before issuance
    max_concurrent: int = 256
    inline_wait: float = 2.0  # answer the challenge POST with the result if validation is this quick
    max_redirects: int = 10
    # A demo on one machine with no DNS: names under these domains resolve to 127.0.0.1 for
    # validation. Only special-use domains (RFC 6761: .test, .example, .invalid, .localhost) are
    # accepted, so a production name can never be pointed at loopback by mistake.
    demo_loopback_domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class RateLimits:
    """[acme.rate_limits]: token buckets kept in the store, shared by every process (ACME-25);
    0 switches a limit off."""

    window_seconds: int = 3600  # for orders_per_account and accounts_per_ip
    orders_per_account: int = 10000
    orders_per_identifier: int = 20000  # per registered domain (or IP address), certificates-per-week style
    identifier_window_seconds: int = 7 * 86400
    accounts_per_ip: int = 300  # per IPv4 address or IPv6 /64
    refusals_per_minute: int = 600  # refused requests per source before it is answered 429 unread (LOAD-05)


@dataclass(frozen=True)
class ChaosConfig:
    """[acme.chaos]: Pebble-style misbehaviour for testing clients (ACME-27); off by default."""

    reject_nonce_fraction: float = 0.0  # of nonces handed out, refused later with badNonce
    validation_delay_max_ms: int = 0  # each validation first waits 0..this many ms

    @property
    def enabled(self) -> bool:
        return self.reject_nonce_fraction > 0 or self.validation_delay_max_ms > 0


@dataclass(frozen=True)
class ProfileSettings:
    """[acme.profiles.NAME]: ACME-only switches for one profile."""

    external_account_required: bool = False
    pre_authorization: bool = False


@dataclass(frozen=True)
class AcmeConfig:
    default_profile: str = ""  # "": the server's [profiles] default
    terms_of_service: str = ""
    website: str = ""
    caa_identities: tuple[str, ...] = ()
    external_account_required: bool = False
    profiles: dict[str, ProfileSettings] = field(default_factory=dict)
    nonce_lifetime: int = 3600
    max_nonces: int = 1_000_000
    nonce_pool: int = 64  # nonces inserted ahead of use, per process
    order_lifetime: int = 7 * 86400
    authz_lifetime: int = 7 * 86400  # a pending authorization
    authz_reuse: int = 30 * 86400  # same-account reuse of a valid authorization; capped by the BR (reuse.py)
    retry_after: int = 2  # Retry-After for orders/authorizations still in progress
    stuck_after: int = 300  # ST-02: a processing order older than this fails with serverInternal
    renewal_info_retry_after: int = 6 * 3600
    alternate_chains: dict[str, tuple[str, ...]] = field(default_factory=dict)  # issuer -> PEM files
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    chaos: ChaosConfig = field(default_factory=ChaosConfig)

    def profile_settings(self, name: str) -> ProfileSettings:
        return self.profiles.get(name, ProfileSettings())

    def eab_required(self, profile: str) -> bool:
        return self.external_account_required or self.profile_settings(profile).external_account_required

    @property
    def challenge_stuck_after(self) -> float:
        """ST-19: seconds after which a challenge still processing is taken for one whose
        validation died with its process: twice the longest a live validation runs (the chaos
        delay, the check, and as long again for CAA when it is checked), at least 30 s. Taking
        over one that was only slow (queued behind max_concurrent) costs a second look at the
        client's server, nothing more: the first result recorded decides."""
        v = self.validation
        longest = self.chaos.validation_delay_max_ms / 1000 + 3 * v.timeout * (2 if v.caa else 1)
        return max(30.0, 2 * longest)


def _positive(table: Table, key: str, default: int) -> int:
    value = table.get(key, int, default)
    if value <= 0:
        raise table.error(key, "must be positive")
    return value


def _resolver(table: Table) -> tuple[str, int] | None:
    text = table.get("resolver", str, "")
    if not text:
        return None
    host, sep, port_text = text.rpartition(":")
    port = parse_decimal(port_text, 5)
    if not sep or not host or port is None:
        raise table.error("resolver", f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), port


SPECIAL_USE_TLDS = ("test", "example", "invalid", "localhost")


def _demo_loopback_domains(table: Table) -> tuple[str, ...]:
    domains = tuple(d.lower().strip(".") for d in table.strings("demo_loopback_domains", []))
    for domain in domains:
        if domain.rsplit(".", 1)[-1] not in SPECIAL_USE_TLDS:
            raise table.error(
                "demo_loopback_domains",
                f"{domain!r} is not under a special-use top-level domain ({', '.join(SPECIAL_USE_TLDS)})",
            )
    return domains


def parse_config(table: Table) -> AcmeConfig:
    d = AcmeConfig()
    v_t = table.table("validation")
    vd = ValidationConfig()
    validation = ValidationConfig(
        http_port=v_t.get("http_port", int, vd.http_port),
        tls_port=v_t.get("tls_port", int, vd.tls_port),
        resolver=_resolver(v_t),
        timeout=v_t.get("timeout", float, vd.timeout),
        caa=v_t.get("caa", bool, vd.caa),
        caa_recheck_seconds=_positive(v_t, "caa_recheck_seconds", vd.caa_recheck_seconds),
        max_concurrent=_positive(v_t, "max_concurrent", vd.max_concurrent),
        inline_wait=v_t.get("inline_wait", float, vd.inline_wait),
        max_redirects=v_t.get("max_redirects", int, vd.max_redirects),
        demo_loopback_domains=_demo_loopback_domains(v_t),
    )
    for key in ("http_port", "tls_port"):
        if not 0 < getattr(validation, key) < 65536:
            raise v_t.error(key, "must be a TCP port")
    if validation.timeout <= 0:
        raise v_t.error("timeout", "must be positive")
    v_t.finish()

    r_t = table.table("rate_limits")
    rd = RateLimits()
    limits = RateLimits(
        window_seconds=_positive(r_t, "window_seconds", rd.window_seconds),
        orders_per_account=r_t.get("orders_per_account", int, rd.orders_per_account),
        orders_per_identifier=r_t.get("orders_per_identifier", int, rd.orders_per_identifier),
        identifier_window_seconds=_positive(r_t, "identifier_window_seconds", rd.identifier_window_seconds),
        accounts_per_ip=r_t.get("accounts_per_ip", int, rd.accounts_per_ip),
        refusals_per_minute=r_t.get("refusals_per_minute", int, rd.refusals_per_minute),
    )
    for key in ("orders_per_account", "orders_per_identifier", "accounts_per_ip"):
        if getattr(limits, key) < 0:
            raise r_t.error(key, "must not be negative (0 switches the limit off)")
    r_t.finish()

    c_t = table.table("chaos")
    chaos = ChaosConfig(
        reject_nonce_fraction=c_t.get("reject_nonce_fraction", float, 0.0),
        validation_delay_max_ms=c_t.get("validation_delay_max_ms", int, 0),
    )
    if not 0 <= chaos.reject_nonce_fraction <= 0.3:
        raise c_t.error("reject_nonce_fraction", "must be between 0 and 0.3")
    if not 0 <= chaos.validation_delay_max_ms <= 60_000:
        raise c_t.error("validation_delay_max_ms", "must be between 0 and 60000")
    c_t.finish()

    profiles: dict[str, ProfileSettings] = {}
    for name, p_t in table.tables("profiles").items():
        profiles[name] = ProfileSettings(
            external_account_required=p_t.get("external_account_required", bool, False),
            pre_authorization=p_t.get("pre_authorization", bool, False),
        )
        p_t.finish()

    chains: dict[str, tuple[str, ...]] = {}
    for issuer, c_t in table.tables("alternate_chains").items():
        chains[issuer] = tuple(c_t.strings("files"))
        c_t.finish()

    cfg = AcmeConfig(
        default_profile=table.get("default_profile", str, d.default_profile),
        terms_of_service=table.get("terms_of_service", str, d.terms_of_service),
        website=table.get("website", str, d.website),
        caa_identities=tuple(table.strings("caa_identities", [])),
        external_account_required=table.get("external_account_required", bool, False),
        profiles=profiles,
        nonce_lifetime=_positive(table, "nonce_lifetime", d.nonce_lifetime),
        max_nonces=_positive(table, "max_nonces", d.max_nonces),
        nonce_pool=_positive(table, "nonce_pool", d.nonce_pool),
        order_lifetime=_positive(table, "order_lifetime", d.order_lifetime),
        authz_lifetime=_positive(table, "authz_lifetime", d.authz_lifetime),
        authz_reuse=table.get("authz_reuse", int, d.authz_reuse),
        retry_after=_positive(table, "retry_after", d.retry_after),
        stuck_after=_positive(table, "stuck_after", d.stuck_after),
        renewal_info_retry_after=_positive(table, "renewal_info_retry_after", d.renewal_info_retry_after),
        alternate_chains=chains,
        validation=validation,
        rate_limits=limits,
        chaos=chaos,
    )
    if cfg.authz_reuse < 0:
        raise table.error("authz_reuse", "must not be negative")
    # CA/B Forum BR 4.2.1: at most 398 days ever; reuse.py applies the shorter periods by date.
    if cfg.authz_reuse > 398 * 86400:
        raise table.error("authz_reuse", "must not exceed 398 days")
    table.finish()
    return cfg
