"""The [est] section: which profile each path label selects, and per-profile EST switches.

[est]
default_profile = "device"          # /.well-known/est/<op> (""; the server's default profile)
[est.labels]
iot = "device"                      # /.well-known/est/iot/<op>
[est.profiles.device]
pop = "required"                    # tls-unique in challengePassword (RFC 7030 §3.5): required | off
trust_anchors = ["idevid-ca.pem"]   # external CAs whose certificates may authenticate simpleenroll
retry_after = 60                    # seconds a 202 (pending approval) asks the client to wait
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from ca.errors import ConfigError
from ca.tomlread import Table


@dataclass(frozen=True)
class EstProfileSettings:
    """EST-only switches for one profile."""

    pop_required: bool = False
    # External trust anchors (a device maker's CA: IDevID bootstrap). A certificate they issued
    # authorises simpleenroll under this profile; it never authorises simplereenroll.
    trust_anchors: tuple[x509.Certificate, ...] = ()
    anchor_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class EstConfig:
    default_profile: str = ""  # "": the server's [profiles] default
    labels: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, EstProfileSettings] = field(default_factory=dict)
    retry_after: int = 60
    password_failures: int = 10  # wrong Basic passwords per client address and window...
    password_window: int = 300  # ...seconds, before 429 (EST-03)

    def settings(self, profile: str) -> EstProfileSettings:
        return self.profiles.get(profile, EstProfileSettings())

    def anchor_files(self) -> tuple[Path, ...]:
        """Every external anchor file, for the TLS listener's list of acceptable client issuers."""
        return tuple(path for s in self.profiles.values() for path in s.anchor_files)


def _load_anchors(table: Table, base: Path) -> tuple[tuple[x509.Certificate, ...], tuple[Path, ...]]:
    paths = tuple(p if p.is_absolute() else base / p for p in map(Path, table.strings("trust_anchors", [])))
    anchors: list[x509.Certificate] = []
    for path in paths:
        try:
            anchors.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except OSError as exc:
            raise table.error("trust_anchors", f"{path}: cannot read: {exc.strerror}") from None
        except ValueError:
            raise table.error("trust_anchors", f"{path}: not a PEM certificate") from None
    return tuple(anchors), paths


def parse_config(table: Table) -> EstConfig:
    base = Path(table.source).parent
    default_profile = table.get("default_profile", str, "")
    labels: dict[str, str] = table.get("labels", dict, {})
    for label, profile in labels.items():
        if not isinstance(profile, str) or not label or "/" in label:
            raise table.error(f"labels.{label}", "expected a profile name for a label without '/'")
    profiles: dict[str, EstProfileSettings] = {}
    for name, p_t in table.tables("profiles").items():
        pop = p_t.choice("pop", ("required", "off"), "off")
        anchors, files = _load_anchors(p_t, base)
        p_t.finish()
        profiles[name] = EstProfileSettings(pop == "required", anchors, files)
    retry_after = table.get("retry_after", int, 60)
    if not 1 <= retry_after <= 86400:
        raise ConfigError(f"{table.source}: est.retry_after must be 1 to 86400 seconds")
    failures = table.get("password_failures", int, 10)
    window = table.get("password_window", int, 300)
    if failures < 1 or window < 1:
        raise ConfigError(f"{table.source}: est.password_failures and est.password_window must be at least 1")
    table.finish()
    return EstConfig(default_profile, labels, profiles, retry_after, failures, window)
