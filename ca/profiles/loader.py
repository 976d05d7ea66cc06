"""Load profile TOML files into `Profile` values, refusing unknown keys and bad values."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier

from ca.enrollment import INVENTORY_FIELD_MAX, PROTOCOLS, AuthMethod
from ca.errors import ConfigError
from ca.keys import KEY_SPECS
from ca.profiles.model import COMMON_NAME_MODES, NAME_TYPES, NameRule, Profile
from ca.tomlread import Table, read_toml_file

T = TypeVar("T")

DEFAULT_KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")
KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
)
EKU_NAMES: dict[str, ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "OCSPSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}
SUBJECT_ATTRIBUTES = ("CN", "O", "OU", "C", "ST", "L", "serialNumber", "emailAddress")


def _each(table: Table, key: str, convert: Callable[[str], T], refusal: str) -> tuple[T, ...]:
    """An array of strings, each converted; one that ``convert`` rejects (ValueError, or re.error
    for a pattern) is refused with ``refusal``, formatted with ``text`` and ``exc``."""
    out = []
    for text in table.strings(key, []):
        try:
            out.append(convert(text))
        except (ValueError, re.error) as exc:
            raise table.error(key, refusal.format(text=text, exc=exc)) from None
    return tuple(out)


def _patterns(table: Table, key: str) -> tuple[re.Pattern[str], ...]:
    return _each(table, key, re.compile, "bad regular expression {text!r}: {exc}")


def _networks(table: Table, key: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return _each(table, key, lambda text: ipaddress.ip_network(text, strict=False), "{text!r} is not an IP network")


def _name_rule(table: Table, kind: str) -> NameRule:
    if kind == "ip":
        rule = NameRule(allow_networks=_networks(table, "allow"), deny_networks=_networks(table, "deny"))
    else:
        rule = NameRule(allow=_patterns(table, "allow"), deny=_patterns(table, "deny"))
    table.finish()
    return rule


def parse_profile(data: dict[str, object], name: str, source: str) -> Profile:
    top = Table(data, source)
    description = top.get("description", str, "")
    issuer = top.get("issuer", str, "") or None
    protocols = top.members("protocols", PROTOCOLS, "protocol", list(PROTOCOLS))
    method_names = [m.value for m in AuthMethod]
    methods = [AuthMethod(text) for text in top.members("auth_methods", method_names, "auth method", method_names)]
    approval = top.choice("approval", ("auto", "manual"), "auto")
    four_eyes = top.get("four_eyes", bool, False)
    teams = top.strings("teams", [])
    if any(not team.strip() or len(team) > INVENTORY_FIELD_MAX for team in teams):
        raise top.error("teams", f"each team is 1 to {INVENTORY_FIELD_MAX} characters")
    lint = top.choice("lint", ("none", "pkilint"), "none")
    lint_profile = top.choice("lint_profile", ("pkix", "cabf-serverauth"), "pkix")
    lint_ignore = top.strings("lint_ignore", [])

    keys = top.table("keys")
    key_types = keys.members("allowed", KEY_SPECS, "key type", list(DEFAULT_KEY_TYPES))
    signature_hash = keys.get("signature_hash", str, "") or None
    if signature_hash not in (None, "sha256", "sha384", "sha512"):
        raise keys.error("signature_hash", f"{signature_hash!r} is not sha256, sha384 or sha512")
    server_generation = keys.get("server_generation", bool, False)
    keys.finish()

    validity = top.table("validity")
    default_days = validity.get("default_days", int, 90)
    max_days = validity.get("max_days", int, max(default_days, 90))
    if not 1 <= default_days <= max_days:
        raise validity.error("default_days", "must be between 1 and max_days")
    cabf_max = validity.get("cabf_max_validity", bool, False)
    backdate = validity.get("backdate_seconds", int, 0)
    allow_requested = validity.get("allow_requested_validity", bool, True)
    validity.finish()

    names = top.table("names")
    san_types = names.members("san_types", NAME_TYPES, "SAN type", ["dns"])
    rules = {kind: _name_rule(names.table(kind), kind) for kind in NAME_TYPES if names.has(kind)}
    max_sans = names.get("max_sans", int, 100)
    require_san = names.get("require_san", bool, True)
    wildcards = names.get("allow_wildcards", bool, False)
    common_name = names.choice("common_name", COMMON_NAME_MODES, "first-san")
    subject_attrs = names.members("subject_attributes", SUBJECT_ATTRIBUTES, "attribute", ["CN"])
    names.finish()

    ext = top.table("extensions")
    key_usage = ext.members("key_usage", KEY_USAGES, "key usage", ["digital_signature"])
    rsa_ke = ext.get("rsa_key_encipherment", bool, False)
    ekus = [EKU_NAMES[text] for text in ext.members("extended_key_usage", EKU_NAMES, "EKU", [])]
    policies = _each(ext, "policies", ObjectIdentifier, "{text!r} is not an OID")
    ext.finish()

    renewal = top.table("renewal")
    window = renewal.get("window_days", int, max(1, default_days // 3))
    renewal.finish()
    top.finish()
    return Profile(
        name=name,
        description=description,
        issuer=issuer,
        protocols=frozenset(protocols),
        auth_methods=frozenset(methods),
        approval=approval,
        lint=lint,
        lint_profile=lint_profile,
        lint_ignore=frozenset(lint_ignore),
        key_types=frozenset(key_types),
        signature_hash=signature_hash,
        default_days=default_days,
        max_days=max_days,
        cabf_max_validity=cabf_max,
        backdate_seconds=backdate,
        san_types=frozenset(san_types),
        names=rules,
        max_sans=max_sans,
        require_san=require_san,
        allow_wildcards=wildcards,
        common_name=common_name,
        subject_attributes=frozenset(subject_attrs),
        key_usage=frozenset(key_usage),
        rsa_key_encipherment=rsa_ke,
        extended_key_usage=tuple(ekus),
        policies=policies,
        renewal_window_days=window,
        allow_requested_validity=allow_requested,
        server_key_generation=server_generation,
        four_eyes=four_eyes,
        teams=frozenset(teams),
        source=source,
    )


def load_profile_file(path: Path) -> Profile:
    return parse_profile(read_toml_file(path, "profile file"), path.stem, str(path))


def load_profiles(directory: Path) -> dict[str, Profile]:
    """Every *.toml in the directory, by file stem."""
    if not directory.is_dir():
        raise ConfigError(f"{directory}: profile directory does not exist")
    profiles = {path.stem: load_profile_file(path) for path in sorted(directory.glob("*.toml"))}
    if not profiles:
        raise ConfigError(f"{directory}: no profile files (*.toml)")
    return profiles
