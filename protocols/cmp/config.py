"""The [cmp] section: which profile each path selects, who is trusted, and the protocol's clocks.

[cmp]
default_profile = "device"       # POST /.well-known/cmp
ra = ""                          # [ra.<name>] whose key signs replies to signed requests ("": the only one)
max_body = 262144                # the largest PKIMessage read (bytes)
mac_min_iterations = 500         # PasswordBasedMac / PBMAC1 iteration floor (OpenSSL 3.0 sends 500)
mac_max_iterations = 100000      # ...and ceiling: the CPU one request may cost before it is refused
implicit_confirm = true          # grant implicitConfirm when a client asks for it
confirm_wait = 300               # seconds an issued certificate waits for certConf before it is revoked
message_time_skew = 300          # seconds messageTime may differ from our clock
poll_interval = 10               # checkAfter (seconds) in pollRep while a request waits for approval
trust_anchors = []               # PEM files: external CAs (device makers) whose certificates may sign ir/cr/p10cr
ra_senders = []                  # PEM files: RA certificates whose raVerified proof of possession is accepted
[cmp.labels]
factory = "device"               # POST /.well-known/cmp/p/factory

conf/tetra.example.toml documents every key; docs/cmp.md says how to use them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from ca.errors import ConfigError
from ca.tomlread import Table

# The largest PKIMessage decoded (message.decode_message). Here, not in message.py, so reading the
# config (every `tetra` command does) does not load the pyasn1 CMP modules.
MAX_MESSAGE_BYTES = 256 * 1024


@dataclass(frozen=True)
class MacLimits:
    """What the CA accepts from a peer. ``min_iterations`` is the configured floor; the
    ceiling bounds the CPU one request may cost. HMAC-SHA-1 as the final MAC is accepted by
    default because OpenSSL 3.0 uses it unless told otherwise (it is not a collision use)."""

    min_iterations: int = 500
    max_iterations: int = 10_000
    min_salt: int = 8
    max_salt: int = 64
    allow_hmac_sha1: bool = True


MAX_BODY_LIMIT = 1024 * 1024  # the most [cmp] max_body may allow (the server reads no more)
ABSOLUTE_MAX_ITERATIONS = 1_000_000


@dataclass(frozen=True)
class CmpConfig:
    default_profile: str = ""  # "": the server's [profiles] default
    ra: str = ""  # "": the only [ra.*]
    max_body: int = MAX_MESSAGE_BYTES
    mac_limits: MacLimits = field(default_factory=MacLimits)
    implicit_confirm: bool = True
    confirm_wait: dt.timedelta = dt.timedelta(minutes=5)
    message_time_skew: dt.timedelta = dt.timedelta(minutes=5)
    poll_interval: int = 10
    trust_anchors: tuple[x509.Certificate, ...] = ()
    ra_senders: tuple[x509.Certificate, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)


def _certificates(table: Table, key: str, base: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate in the PEM files ``key`` lists (paths relative to the config file)."""
    found: list[x509.Certificate] = []
    for name in table.strings(key, []):
        path = Path(name) if Path(name).is_absolute() else base / name
        try:
            certificates = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise table.error(key, f"cannot read certificates from {path}: {exc}") from None
        found.extend(certificates)
    return tuple(found)


def _seconds(table: Table, key: str, default: int, low: int, high: int) -> int:
    value = table.get(key, int, default)
    if not low <= value <= high:
        raise table.error(key, f"must be {low} to {high}")
    return value


def parse_config(table: Table) -> CmpConfig:
    base = Path(table.source).parent
    labels: dict[str, str] = table.get("labels", dict, {})
    for label, profile in labels.items():
        if not isinstance(profile, str) or not label or "/" in label:
            raise table.error(f"labels.{label}", "expected a profile name for a label without '/'")
    min_iterations = _seconds(table, "mac_min_iterations", 500, 1, ABSOLUTE_MAX_ITERATIONS)
    max_iterations = _seconds(table, "mac_max_iterations", 100_000, 1, ABSOLUTE_MAX_ITERATIONS)
    if min_iterations > max_iterations:
        raise ConfigError(f"{table.source}: cmp.mac_min_iterations is above cmp.mac_max_iterations")
    config = CmpConfig(
        default_profile=table.get("default_profile", str, ""),
        ra=table.get("ra", str, ""),
        max_body=_seconds(table, "max_body", MAX_MESSAGE_BYTES, 1024, MAX_BODY_LIMIT),
        mac_limits=MacLimits(min_iterations=min_iterations, max_iterations=max_iterations),
        implicit_confirm=table.get("implicit_confirm", bool, True),
        confirm_wait=dt.timedelta(seconds=_seconds(table, "confirm_wait", 300, 1, 86_400)),
        message_time_skew=dt.timedelta(seconds=_seconds(table, "message_time_skew", 300, 1, 86_400)),
        poll_interval=_seconds(table, "poll_interval", 10, 1, 3_600),
        trust_anchors=_certificates(table, "trust_anchors", base),
        ra_senders=_certificates(table, "ra_senders", base),
        labels=labels,
    )
    table.finish()
    return config
