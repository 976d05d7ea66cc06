"""The [scep] section: which profile each path selects, the RA, limits, and per-profile switches.

[scep]
default_profile = "device"      # /scep, /cgi-bin/pkiclient.exe, /certsrv/mscep/mscep.dll
ra = ""                          # [ra.<name>] that decrypts and signs ("": the only one)
max_body = 65536
challenge_failures = 10          # wrong challenges per source and window... (SCEP-03)
challenge_window = 300           # ...seconds
[scep.labels]
mdm = "device"                   # /scep/mdm
[scep.profiles.device]
challenge = "..."                # or challenge_file = "secrets/scep-device"
one_time_challenges = true
open_enrollment = false
legacy = false
include_ca_certs = true
webhook_url = ""                 # with webhook_timeout, webhook_retries, webhook_ca_file

conf/tetra.example.toml documents every key; docs/scep.md says how to use them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ca.config_secrets import read_secret
from ca.errors import ConfigError
from ca.tomlread import Table
from protocols.scep.webhook import WebhookSettings, parse_webhook

MAX_BODY_LIMIT = 1024 * 1024  # the most [scep] max_body may allow (the server reads no more)


@dataclass(frozen=True)
class ScepProfileSettings:
    """SCEP-only switches for one profile. Without a [scep.profiles.<name>] table a profile takes
    one-time challenges only (`tetra scep challenge`)."""

    challenge: str | None = None  # the static password, if any
    one_time_challenges: bool = True
    open_enrollment: bool = False  # no challenge at all (SCEP-05): only when said so
    legacy: bool = False  # DES, 3DES, SHA-1 and MD5 accepted and advertised (SCEP-01, SCEP-02)
    include_ca_certs: bool = True  # CertRep's degenerate PKCS#7 carries the issuing chain too
    webhook: WebhookSettings | None = None  # when set, the webhook alone judges the challenge


@dataclass(frozen=True)
class ScepConfig:
    default_profile: str = ""  # "": the server's [profiles] default
    ra: str = ""  # "": the only [ra.*]
    max_body: int = 64 * 1024
    challenge_failures: int = 10
    challenge_window: int = 300
    labels: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, ScepProfileSettings] = field(default_factory=dict)

    def settings(self, profile: str) -> ScepProfileSettings:
        return self.profiles.get(profile, ScepProfileSettings())


def _static_challenge(table: Table, base: Path) -> str | None:
    inline = table.get("challenge", str, "")
    file = table.get("challenge_file", str, "")
    if inline and file:
        raise table.error("challenge", "set challenge or challenge_file, not both")
    if file:
        path = Path(file) if Path(file).is_absolute() else base / file
        inline = read_secret("", str(path), f"{table.where('challenge_file')}").decode()
    if inline and len(inline) < 8:
        raise table.error("challenge", "a static challenge must be at least 8 characters")
    return inline or None


def _profile(table: Table, base: Path) -> ScepProfileSettings:
    settings = ScepProfileSettings(
        challenge=_static_challenge(table, base),
        one_time_challenges=table.get("one_time_challenges", bool, True),
        open_enrollment=table.get("open_enrollment", bool, False),
        legacy=table.get("legacy", bool, False),
        include_ca_certs=table.get("include_ca_certs", bool, True),
        webhook=parse_webhook(table),
    )
    table.finish()
    has_source = settings.challenge or settings.one_time_challenges or settings.webhook
    if not has_source and not settings.open_enrollment:
        raise table.error(
            "open_enrollment",
            "this profile has no challenge source (challenge, one_time_challenges, webhook_url); "
            "set open_enrollment = true to enrol anyone who asks (SCEP-05)",
        )
    return settings


def parse_config(table: Table) -> ScepConfig:
    base = Path(table.source).parent
    labels: dict[str, str] = table.get("labels", dict, {})
    for label, profile in labels.items():
        if not isinstance(profile, str) or not label or "/" in label:
            raise table.error(f"labels.{label}", "expected a profile name for a label without '/'")
    profiles = {name: _profile(p_t, base) for name, p_t in table.tables("profiles").items()}
    config = ScepConfig(
        default_profile=table.get("default_profile", str, ""),
        ra=table.get("ra", str, ""),
        max_body=table.get("max_body", int, 64 * 1024),
        challenge_failures=table.get("challenge_failures", int, 10),
        challenge_window=table.get("challenge_window", int, 300),
        labels=labels,
        profiles=profiles,
    )
    table.finish()
    if not 1024 <= config.max_body <= MAX_BODY_LIMIT:
        raise ConfigError(f"{table.source}: scep.max_body must be 1024 to {MAX_BODY_LIMIT} bytes")
    if config.challenge_failures < 1 or config.challenge_window < 1:
        raise ConfigError(f"{table.source}: scep.challenge_failures and scep.challenge_window must be at least 1")
    return config
