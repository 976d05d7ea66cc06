"""The `[notifications]` config section: who hears about what, when, and through which channel.

Parsed strictly (unknown keys, negative days, a team naming a webhook that is not configured are
all refused naming the key), because a notification setting that is silently wrong shows up only
on the day a certificate expires unannounced. Secrets (the SMTP password, webhook HMAC keys) are
named by environment variable or file, as everywhere else (ca/config_secrets.py), and read when
a message is sent, so a config check never needs them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ca.config_secrets import read_secret
from ca.durations import parse_duration
from ca.tomlread import Table

DEFAULT_THRESHOLDS = (90, 60, 30, 14, 7, 1)
DEFAULT_ESCALATE_AFTER = dt.timedelta(hours=4)
SECURITY_MODES = ("starttls", "tls", "none")


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    username: str = ""
    password_env: str = ""
    password_file: str = ""
    sender: str = "tetra@localhost"
    timeout_seconds: float = 30.0

    def password(self) -> str | None:
        if not (self.password_env or self.password_file):
            return None
        return read_secret(self.password_env, self.password_file, "notifications.smtp password").decode()


@dataclass(frozen=True)
class WebhookSettings:
    name: str
    url: str
    secret_env: str = ""
    secret_file: str = ""
    timeout_seconds: float = 10.0

    def secret(self) -> bytes:
        return read_secret(self.secret_env, self.secret_file, f"notifications.webhooks.{self.name} secret")


@dataclass(frozen=True)
class TeamRoute:
    email: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    thresholds_days: tuple[int, ...] | None = None
    # Who decides this team's held requests, instead of [notifications.approvals]' approvers.
    approvers_email: tuple[str, ...] = ()
    approvers_webhooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApprovalSettings:
    """[notifications.approvals]: who hears of a request held for approval, and who hears again
    when it has waited longer than ``escalate_after`` (empty escalation lists mean the admins)."""

    email: tuple[str, ...] = ()
    webhooks: tuple[str, ...] = ()
    escalate_after: dt.timedelta = DEFAULT_ESCALATE_AFTER
    escalate_email: tuple[str, ...] = ()
    escalate_webhooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotificationSettings:
    enabled: bool = False
    interval_seconds: float = 300.0
    thresholds_days: tuple[int, ...] = DEFAULT_THRESHOLDS
    short_lived_days: int = 7
    short_lived_fractions: tuple[float, ...] = (0.33, 0.1)
    admin_email: tuple[str, ...] = ()
    admin_webhooks: tuple[str, ...] = ()
    escalate_team_after: int = 1
    escalate_admins_after: int = 2
    digest_hour_utc: int = 8
    max_attempts: int = 8
    never_deployed_after_days: int = 7
    smtp: SmtpSettings | None = None
    webhooks: Mapping[str, WebhookSettings] = field(default_factory=dict)
    teams: Mapping[str, TeamRoute] = field(default_factory=dict)
    profile_thresholds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    approvals: ApprovalSettings = ApprovalSettings()

    def thresholds_for(self, team: str | None, profile: str | None) -> tuple[int, ...]:
        """The team's list, else the profile's, else the default."""
        route = self.teams.get(team or "")
        if route is not None and route.thresholds_days is not None:
            return route.thresholds_days
        return self.profile_thresholds.get(profile or "", self.thresholds_days)


def parse_notifications(table: Table) -> NotificationSettings:
    base = Path(table.source).parent
    webhooks = {name: _webhook(name, t, base) for name, t in table.tables("webhooks").items()}
    teams = {name: _team(t, webhooks) for name, t in table.tables("teams").items()}
    profiles: dict[str, tuple[int, ...]] = {}
    for name, t in table.tables("profiles").items():
        profiles[name] = _days(t, "thresholds_days", DEFAULT_THRESHOLDS)
        t.finish()
    approvals = _approvals(table.table("approvals"), webhooks)
    smtp_table = table.table("smtp")
    smtp = _smtp(smtp_table, base) if smtp_table.has("host") else None
    smtp_table.finish()
    fractions = tuple(table.get("short_lived_fractions", list, [0.33, 0.1]))
    for value in fractions:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise table.error("short_lived_fractions", f"each fraction must be a number between 0 and 1, got {value!r}")
    settings = NotificationSettings(
        enabled=table.get("enabled", bool, False),
        interval_seconds=_positive(table, "interval_seconds", 300.0),
        thresholds_days=_days(table, "thresholds_days", DEFAULT_THRESHOLDS),
        short_lived_days=_count(table, "short_lived_days", 7),
        short_lived_fractions=tuple(sorted((float(f) for f in fractions), reverse=True)),
        admin_email=tuple(_addresses(table, "admin_email")),
        admin_webhooks=tuple(_known_webhooks(table, "admin_webhooks", webhooks)),
        escalate_team_after=_count(table, "escalate_team_after", 1),
        escalate_admins_after=_count(table, "escalate_admins_after", 2),
        digest_hour_utc=_count(table, "digest_hour_utc", 8),
        max_attempts=_count(table, "max_attempts", 8),
        never_deployed_after_days=_count(table, "never_deployed_after_days", 7),
        smtp=smtp,
        webhooks=webhooks,
        teams=teams,
        profile_thresholds=profiles,
        approvals=approvals,
    )
    if settings.digest_hour_utc > 23:
        raise table.error("digest_hour_utc", "an hour of the day, 0 to 23")
    if settings.max_attempts < 1:
        raise table.error("max_attempts", "at least 1")
    table.finish()
    return settings


def _smtp(t: Table, base: Path) -> SmtpSettings:
    port = t.get("port", int, 587)
    if not 0 < port < 65536:
        raise t.error("port", f"not a port number: {port}")
    return SmtpSettings(
        host=t.get("host", str),
        port=port,
        security=t.choice("security", SECURITY_MODES, "starttls"),
        username=t.get("username", str, ""),
        password_env=t.get("password_env", str, ""),
        password_file=_file(base, t.get("password_file", str, "")),
        sender=t.get("sender", str, "tetra@localhost"),
        timeout_seconds=_positive(t, "timeout_seconds", 30.0),
    )


def _webhook(name: str, t: Table, base: Path) -> WebhookSettings:
    url = t.get("url", str)
    if not url.startswith(("http://", "https://")):
        raise t.error("url", f"expected an http:// or https:// URL, got {url!r}")
    hook = WebhookSettings(
        name=name,
        url=url,
        secret_env=t.get("secret_env", str, ""),
        secret_file=_file(base, t.get("secret_file", str, "")),
        timeout_seconds=_positive(t, "timeout_seconds", 10.0),
    )
    if not (hook.secret_env or hook.secret_file):
        raise t.error("secret_env", "a webhook needs secret_env or secret_file (its HMAC key)")
    t.finish()
    return hook


def _team(t: Table, webhooks: Mapping[str, WebhookSettings]) -> TeamRoute:
    route = TeamRoute(
        email=tuple(_addresses(t, "email")),
        webhooks=tuple(_known_webhooks(t, "webhooks", webhooks)),
        thresholds_days=_days(t, "thresholds_days", ()) if t.has("thresholds_days") else None,
        approvers_email=tuple(_addresses(t, "approvers_email")),
        approvers_webhooks=tuple(_known_webhooks(t, "approvers_webhooks", webhooks)),
    )
    t.finish()
    return route


def _approvals(t: Table, webhooks: Mapping[str, WebhookSettings]) -> ApprovalSettings:
    escalate_after = DEFAULT_ESCALATE_AFTER
    if t.has("escalate_after"):
        try:
            escalate_after = parse_duration(t.get("escalate_after", object))
        except ValueError as exc:
            raise t.error("escalate_after", str(exc)) from None
        if escalate_after <= dt.timedelta(0):
            raise t.error("escalate_after", f"must be positive, got {escalate_after}")
    settings = ApprovalSettings(
        email=tuple(_addresses(t, "email")),
        webhooks=tuple(_known_webhooks(t, "webhooks", webhooks)),
        escalate_after=escalate_after,
        escalate_email=tuple(_addresses(t, "escalate_email")),
        escalate_webhooks=tuple(_known_webhooks(t, "escalate_webhooks", webhooks)),
    )
    t.finish()
    return settings


def _days(t: Table, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    values = t.get(key, list, list(default))
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise t.error(key, f"each threshold must be a whole number of days, 1 or more, got {value!r}")
    return tuple(sorted(set(values), reverse=True))


def _count(t: Table, key: str, default: int) -> int:
    value = t.get(key, int, default)
    if value < 0:
        raise t.error(key, f"must not be negative, got {value}")
    return value


def _positive(t: Table, key: str, default: float) -> float:
    value = t.get(key, float, default)
    if value <= 0:
        raise t.error(key, f"must be positive, got {value}")
    return value


def _addresses(t: Table, key: str) -> list[str]:
    values = t.strings(key, [])
    for value in values:
        if "@" not in value or any(ch.isspace() for ch in value):
            raise t.error(key, f"not an email address: {value!r}")
    return values


def _known_webhooks(t: Table, key: str, webhooks: Mapping[str, WebhookSettings]) -> list[str]:
    return t.members(key, webhooks, "webhook (not in [notifications.webhooks])", [])


def _file(base: Path, text: str) -> str:
    return str(base / text) if text and not Path(text).is_absolute() else text
