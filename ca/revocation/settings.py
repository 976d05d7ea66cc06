"""The [ocsp] and [crl] config sections, validated into frozen values.

Durations are strings with a unit ("250ms", "30s", "15m", "4h", "7d") or plain
seconds. The protocol packages call these parsers; the CLI and the jobs reuse
the parsed values from the server config, so every process agrees on them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from ca.durations import parse_duration
from ca.keys import KEY_SPECS
from ca.signers.registry import SignerSpec, parse_signer_spec
from ca.tomlread import Table

CERT_ID_HASHES = ("sha1", "sha256", "sha384", "sha512")


def _duration(table: Table, key: str, default: str, *, zero_ok: bool = False) -> dt.timedelta:
    raw: object = table.get(key, object, default)
    try:
        value = parse_duration(raw)
    except ValueError as exc:
        raise table.error(key, str(exc)) from None
    if value < dt.timedelta(0) or (value == dt.timedelta(0) and not zero_ok):
        raise table.error(key, "must be positive")
    return value


def _path(table: Table, key: str) -> str:
    """Relative paths are taken from the config file's directory, as in server/config.py."""
    text = table.get(key, str, "")
    source = getattr(table, "_source", "")
    if not text or Path(text).is_absolute() or not source:
        return text
    return str(Path(source).parent / text)


def _positive(table: Table, key: str, default: int) -> int:
    value = table.get(key, int, default)
    if value < 1:
        raise table.error(key, "must be at least 1")
    return value


RESPONDER_SIGNER = "ocsp-responder"  # the shared responder key's signer name (logs, errors)
# [ocsp.responder_key] source -> signer backend; "ephemeral" has no spec (a key made in memory).
_SOURCE_BACKENDS = {"file": "software", "pkcs11": "pkcs11"}
# Before one parser read every signer table, [ocsp.responder_key] accepted all of these
# whatever the source; keys the source does not use are still accepted (and ignored).
_LEGACY_KEYS = ("file", "passphrase_env", "passphrase_file", "module", "uri", "pin_env", "pin_file")


@dataclass(frozen=True)
class ResponderKeySettings:
    """Where the delegated responder's key lives: made in memory by each process and
    certified at start-up (``signer`` None; ``key_type`` "" = the issuing CA's key type),
    or one key shared by every process, opened like any other signer (``signer``)."""

    key_type: str = ""
    signer: SignerSpec | None = None


@dataclass(frozen=True)
class OcspSettings:
    responder: str = "delegated"  # delegated | ca
    key: ResponderKeySettings = ResponderKeySettings()
    responder_validity: dt.timedelta = dt.timedelta(days=30)
    responder_country: str = ""  # subject C when the CA subject has none (BR 7.1.2.8)
    validity: dt.timedelta = dt.timedelta(days=7)  # nextUpdate - thisUpdate
    refresh_after: dt.timedelta = dt.timedelta(days=4)  # re-sign once thisUpdate is this old
    backdate: dt.timedelta = dt.timedelta(0)
    presign_hashes: tuple[str, ...] = ("sha1", "sha256")
    fresh_rate: float = 2000.0  # fresh signatures per second per process (nonce, multi, unknown)
    fresh_burst: int = 200
    fresh_concurrency: int = 64
    max_request_bytes: int = 128 * 1024
    max_certs: int = 8  # CertIDs answered in one request; above it malformedRequest (OCSP-06)
    cache_entries: int = 200_000
    cache_ttl: dt.timedelta = dt.timedelta(hours=1)
    poll_interval: dt.timedelta = dt.timedelta(milliseconds=250)
    # How long an issuance may be in flight (intent stored, result not yet): a 'signing' row
    # older than this was cut short by a crash and is settled by recovery (ca/recovery.py).
    # Keep it well above the signer and database timeouts.
    signing_grace: dt.timedelta = dt.timedelta(minutes=2)
    preload: bool = True
    refresh_batch: int = 500

    def __post_init__(self) -> None:
        if not dt.timedelta(hours=8) <= self.validity <= dt.timedelta(days=10):
            raise ValueError("validity must be between 8h and 10d (BR 4.9.10)")
        if self.refresh_after >= self.validity:
            raise ValueError("refresh_after must be shorter than validity")
        if self.responder_validity <= self.validity:
            raise ValueError("responder_validity must be longer than validity")

    @property
    def rotate_before(self) -> dt.timedelta:
        """Replace a responder certificate while it still covers a whole response validity."""
        return self.validity + dt.timedelta(days=1)


def parse_ocsp(table: Table) -> OcspSettings:
    key_t = table.table("responder_key")
    source = key_t.choice("source", ("ephemeral", *_SOURCE_BACKENDS), "ephemeral")
    key_type = key_t.get("key_type", str, "")
    if key_type and key_type not in KEY_SPECS:
        raise key_t.error("key_type", f"unknown key type {key_type!r}")
    signer = None
    if source in _SOURCE_BACKENDS:
        signer = parse_signer_spec(key_t, RESPONDER_SIGNER, _SOURCE_BACKENDS[source], key_file_key="file")
    for legacy in _LEGACY_KEYS:
        key_t.get(legacy, str, "")
    key_t.finish()
    key = ResponderKeySettings(key_type=key_type, signer=signer)
    hashes = table.strings("presign_hashes", ["sha1", "sha256"])
    for name in hashes:
        if name not in CERT_ID_HASHES:
            raise table.error("presign_hashes", f"{name!r} is not one of {', '.join(CERT_ID_HASHES)}")
    try:
        settings = OcspSettings(
            responder=table.choice("responder", ("delegated", "ca"), "delegated"),
            key=key,
            responder_validity=_duration(table, "responder_validity", "30d"),
            responder_country=table.get("responder_country", str, ""),
            validity=_duration(table, "validity", "7d"),
            refresh_after=_duration(table, "refresh_after", "4d"),
            backdate=_duration(table, "backdate", "0s", zero_ok=True),
            presign_hashes=tuple(hashes),
            fresh_rate=table.get("fresh_rate", float, 2000.0),
            fresh_burst=_positive(table, "fresh_burst", 200),
            fresh_concurrency=_positive(table, "fresh_concurrency", 64),
            max_request_bytes=_positive(table, "max_request_bytes", 128 * 1024),
            max_certs=_positive(table, "max_certs", 8),
            cache_entries=_positive(table, "cache_entries", 200_000),
            cache_ttl=_duration(table, "cache_ttl", "1h"),
            poll_interval=_duration(table, "poll_interval", "250ms"),
            signing_grace=_duration(table, "signing_grace", "2m"),
            preload=table.get("preload", bool, True),
            refresh_batch=_positive(table, "refresh_batch", 500),
        )
    except ValueError as exc:
        raise table.error("validity", str(exc)) from None
    table.finish()
    return settings


@dataclass(frozen=True)
class CrlSettings:
    validity: dt.timedelta = dt.timedelta(days=7)  # nextUpdate - thisUpdate of complete CRLs
    interval: dt.timedelta = dt.timedelta(days=1)  # scheduled regeneration
    batch_delay: dt.timedelta = dt.timedelta(seconds=30)  # after a revocation, wait to batch more
    partitions: int = 1  # fixed per issuer at first use; 1 = no partitions
    delta: bool = False
    delta_validity: dt.timedelta = dt.timedelta(days=1)
    delta_interval: dt.timedelta = dt.timedelta(hours=1)
    expired_grace: dt.timedelta = dt.timedelta(days=7)  # keep entries this long after notAfter (CRL-05)
    lint: str = "pkix"  # pkix | cabf | none: pkilint gate before signing
    lint_sample: int = 200  # entries in the throwaway-key copy that is linted (plus one of each shape)
    publish_dir: str = ""  # also write <issuer>.crl files here, atomically
    max_age: dt.timedelta = dt.timedelta(minutes=5)  # HTTP Cache-Control of served CRLs
    lease: dt.timedelta = dt.timedelta(seconds=30)  # leader lease for regeneration jobs
    check_interval: dt.timedelta = dt.timedelta(seconds=30)
    keep: int = 3  # published CRLs kept per scope

    def __post_init__(self) -> None:
        if self.validity > dt.timedelta(days=10):
            raise ValueError("validity must be at most 10d (BR 4.9.7)")
        if self.interval >= self.validity:
            raise ValueError("interval must be shorter than validity")
        if self.delta and self.delta_interval >= self.delta_validity:
            raise ValueError("delta_interval must be shorter than delta_validity")


def parse_crl(table: Table) -> CrlSettings:
    try:
        settings = CrlSettings(
            validity=_duration(table, "validity", "7d"),
            interval=_duration(table, "interval", "1d"),
            batch_delay=_duration(table, "batch_delay", "30s"),
            partitions=_positive(table, "partitions", 1),
            delta=table.get("delta", bool, False),
            delta_validity=_duration(table, "delta_validity", "1d"),
            delta_interval=_duration(table, "delta_interval", "1h"),
            expired_grace=_duration(table, "expired_grace", "7d"),
            lint=table.choice("lint", ("pkix", "cabf", "none"), "pkix"),
            lint_sample=_positive(table, "lint_sample", 200),
            publish_dir=_path(table, "publish_dir"),
            max_age=_duration(table, "max_age", "5m"),
            lease=_duration(table, "lease", "30s"),
            check_interval=_duration(table, "check_interval", "30s"),
            keep=_positive(table, "keep", 3),
        )
    except ValueError as exc:
        raise table.error("validity", str(exc)) from None
    table.finish()
    return settings
