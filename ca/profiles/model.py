"""The `Profile`: one TOML file under conf/profiles/, validated into frozen values."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from cryptography.x509.oid import ObjectIdentifier

from ca.enrollment import AuthMethod

NAME_TYPES = ("dns", "ip", "email", "uri")
COMMON_NAME_MODES = ("first-san", "from-request", "none")


@dataclass(frozen=True)
class NameRule:
    """Allowed and denied patterns for one SAN type (regexes matched in full; CIDRs for ip)."""

    allow: tuple[re.Pattern[str], ...] = ()
    deny: tuple[re.Pattern[str], ...] = ()
    allow_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    deny_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    issuer: str | None  # None: the configured default issuer
    protocols: frozenset[str]
    auth_methods: frozenset[AuthMethod]
    approval: str  # "auto" | "manual"
    lint: str  # "none" | "pkilint"
    lint_profile: str  # "pkix" | "cabf-serverauth"
    lint_ignore: frozenset[str]  # finding codes accepted anyway (say, internal names on a lab CA)
    key_types: frozenset[str]  # key specs: ec-p256, rsa-2048, ed25519...
    signature_hash: str | None  # None: matches the issuer key
    default_days: int
    max_days: int
    cabf_max_validity: bool  # also cap validity at the CA/B Forum maximum in force on the date
    backdate_seconds: int
    san_types: frozenset[str]
    names: dict[str, NameRule]
    max_sans: int
    require_san: bool
    allow_wildcards: bool
    common_name: str  # first-san | from-request | none
    subject_attributes: frozenset[str]  # RDN attribute short names kept from the request
    key_usage: frozenset[str]
    rsa_key_encipherment: bool
    extended_key_usage: tuple[ObjectIdentifier, ...]
    policies: tuple[ObjectIdentifier, ...]
    renewal_window_days: int
    allow_requested_validity: bool
    # [keys] server_generation: the CA may make the key pair (EST serverkeygen) and send it back.
    server_key_generation: bool = False
    # Four eyes: whoever approves a held request must not be whoever made it (the approval queue).
    four_eyes: bool = False
    # Teams whose operators may request under this profile through the management API; empty: any.
    teams: frozenset[str] = frozenset()
    source: str = ""  # the file it came from, for error messages
    extra: dict[str, object] = field(default_factory=dict)
