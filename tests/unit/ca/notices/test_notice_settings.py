"""[notifications] parsing: defaults, the full form, and nonsense refused naming the key."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from ca.errors import ConfigError
from ca.notices.settings import NotificationSettings, parse_notifications
from ca.tomlread import Table

FULL = """
enabled = true
interval_seconds = 60
thresholds_days = [30, 7, 60]
admin_email = ["pki@example.com"]
admin_webhooks = ["chat"]
escalate_admins_after = 3
[smtp]
host = "127.0.0.1"
port = 2525
security = "none"
password_file = "secrets/smtp"
username = "tetra"
sender = "tetra@example.com"
[webhooks.chat]
url = "https://hooks.example.com/tetra"
secret_env = "CHAT_SECRET"
[teams.web]
email = ["web@example.com"]
webhooks = ["chat"]
thresholds_days = [14]
approvers_email = ["web-ra@example.com"]
[profiles.short]
thresholds_days = [2, 1]
[approvals]
email = ["ra@example.com"]
webhooks = ["chat"]
escalate_after = "90m"
escalate_email = ["lead@example.com"]
"""


def parse(text: str, source: str = "/etc/tetra/tetra.toml") -> NotificationSettings:
    return parse_notifications(Table(tomllib.loads(text), source, "notifications."))


def test_defaults_and_full_form() -> None:
    assert parse("") == NotificationSettings()
    assert NotificationSettings().thresholds_days == (90, 60, 30, 14, 7, 1)
    settings = parse(FULL)
    assert settings.enabled and settings.interval_seconds == 60
    assert settings.thresholds_days == (60, 30, 7)  # most distant first
    assert settings.smtp is not None and settings.smtp.port == 2525 and settings.smtp.security == "none"
    assert Path(settings.smtp.password_file) == Path("/etc/tetra/secrets/smtp")  # relative to the config
    assert settings.webhooks["chat"].url == "https://hooks.example.com/tetra"
    assert settings.teams["web"].email == ("web@example.com",) and settings.teams["web"].thresholds_days == (14,)
    assert settings.thresholds_for("web", "short") == (14,)
    assert settings.thresholds_for("ops", "short") == (2, 1)
    assert settings.thresholds_for(None, None) == (60, 30, 7)
    assert settings.teams["web"].approvers_email == ("web-ra@example.com",)
    approvals = settings.approvals
    assert approvals.email == ("ra@example.com",) and approvals.webhooks == ("chat",)
    assert approvals.escalate_after == dt.timedelta(minutes=90) and approvals.escalate_email == ("lead@example.com",)
    assert parse("[approvals]\nescalate_after = 7200").approvals.escalate_after == dt.timedelta(hours=2)
    assert NotificationSettings().approvals.escalate_after == dt.timedelta(hours=4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("thresholds_days = [30, -1]", "notifications.thresholds_days: each threshold must be"),
        ("short_lived_fractions = [0.5, 1.5]", "notifications.short_lived_fractions: each fraction"),
        ("short_lived_days = -2", "notifications.short_lived_days: must not be negative"),
        ("admin_webhooks = ['nowhere']", "notifications.admin_webhooks: unknown webhook"),
        ("[teams.web]\nwebhooks = ['nowhere']", "notifications.teams.web.webhooks: unknown webhook"),
        ("[teams.web]\nemail = ['not-an-address']", "notifications.teams.web.email: not an email address"),
        ("[webhooks.chat]\nurl = 'ftp://x'\nsecret_env = 'S'", "notifications.webhooks.chat.url: expected an http"),
        ("[webhooks.chat]\nurl = 'https://x'", "notifications.webhooks.chat.secret_env: a webhook needs"),
        ("[smtp]\nhost = 'h'\nsecurity = 'ssl'", "notifications.smtp.security: 'ssl' is not one of"),
        ("digest_hour_utc = 24", "notifications.digest_hour_utc: an hour of the day"),
        ("thresholds = [1]", "notifications.thresholds: unknown key"),
        ("[profiles.x]\nthreshold_days = [1]", "notifications.profiles.x.threshold_days: unknown key"),
        ("[approvals]\nescalate_after = '4 hours'", "notifications.approvals.escalate_after: '4 hours' is not"),
        ("[approvals]\nescalate_after = -5", "notifications.approvals.escalate_after: must be positive"),
        ("[approvals]\nwebhooks = ['nowhere']", "notifications.approvals.webhooks: unknown webhook"),
        ("[approvals]\nescalate_email = ['boss']", "notifications.approvals.escalate_email: not an email"),
        ("[approvals]\nescalate = '4h'", "notifications.approvals.escalate: unknown key"),
        ("[teams.web]\napprovers_webhooks = ['x']", "notifications.teams.web.approvers_webhooks: unknown webhook"),
    ],
)
def test_nonsense_is_refused_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert f"/etc/tetra/tetra.toml: {message}" in str(caught.value)
