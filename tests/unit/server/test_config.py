"""Config loading: unknown keys and wrong types are errors naming file and key; env overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ca.errors import ConfigError
from ca.profiles.loader import load_profiles, parse_profile
from server.config import ListenerLimits, apply_env_overrides
from server.wiring import read_config


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_demo_config_loads(ca_dir: Path) -> None:
    config = read_config(ca_dir / "tetra.toml", environ={})
    assert config.default_issuer == "issuing-ca"
    assert config.database_url.endswith("tetra.db") and config.database_url.startswith("sqlite:///")
    assert config.http and config.http.port == 8080


def test_unknown_key_is_an_error(ca_dir: Path) -> None:
    _edit(ca_dir / "tetra.toml", "[database]\n", "[database]\nurll = 'x'\n")
    with pytest.raises(ConfigError) as err:
        read_config(ca_dir / "tetra.toml", environ={})
    assert str(err.value) == f"{ca_dir / 'tetra.toml'}: database.urll: unknown key"


def test_unknown_section_is_an_error(ca_dir: Path) -> None:
    (ca_dir / "tetra.toml").write_text((ca_dir / "tetra.toml").read_text() + "\n[databse]\nurl = 'x'\n")
    with pytest.raises(ConfigError) as err:
        read_config(ca_dir / "tetra.toml", environ={})
    assert "databse: unknown key" in str(err.value)


def test_wrong_type_is_an_error(ca_dir: Path) -> None:
    _edit(ca_dir / "tetra.toml", "[database]\n", "[database]\npool_size = 'ten'\n")
    with pytest.raises(ConfigError) as err:
        read_config(ca_dir / "tetra.toml", environ={})
    assert "database.pool_size: expected integer, got string" in str(err.value)


def test_pin_inline_is_refused(ca_dir: Path) -> None:
    text = (ca_dir / "tetra.toml").read_text()
    text += '\n[signers.hsm]\nbackend = "pkcs11"\nmodule = "/x.so"\nuri = "pkcs11:token=t;object=k"\npin = "1234"\n'
    (ca_dir / "tetra.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        read_config(ca_dir / "tetra.toml", environ={})
    assert "signers.hsm.pin: PINs are never written in the config" in str(err.value)


def test_env_overrides_nested_and_typed(ca_dir: Path) -> None:
    config = read_config(
        ca_dir / "tetra.toml",
        environ={
            "TETRA_DATABASE__POOL_SIZE": "3",
            "TETRA_SERVER__HTTP": "127.0.0.1:9999",
            "TETRA_LOGGING__FORMAT": "json",
        },
    )
    assert config.database_pool_size == 3
    assert config.http is not None and config.http.port == 9999
    assert config.log_format == "json"


def test_env_override_matches_dashed_names() -> None:
    data: dict[str, Any] = {"issuers": {"issuing-ca": {"crl_url": "a"}}, "acme": {"validation": {"http_port": 80}}}
    apply_env_overrides(data, {"TETRA_ISSUERS__ISSUING_CA__CRL_URL": "b", "TETRA_ACME__VALIDATION__HTTP_PORT": "5002"})
    assert data["issuers"]["issuing-ca"]["crl_url"] == "b"
    assert data["acme"]["validation"]["http_port"] == 5002


def test_env_override_wrong_type_is_an_error(ca_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        read_config(ca_dir / "tetra.toml", environ={"TETRA_DATABASE__POOL_SIZE": '"many"'})
    assert "pool_size: expected integer" in str(err.value)


def test_shipped_profiles_load() -> None:
    profiles = load_profiles(Path(__file__).resolve().parents[3] / "conf" / "profiles")
    assert {"tls-server", "tls-client", "device", "code-signing", "email"} <= set(profiles)
    assert profiles["tls-server"].lint == "pkilint"
    assert profiles["code-signing"].approval == "manual"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"keys": {"allowed": ["rsa-1024"]}}, "keys.allowed: unknown key type 'rsa-1024'"),
        ({"validity": {"max_days": "90"}}, "validity.max_days: expected integer, got string"),
        ({"names": {"san_types": ["x400"]}}, "names.san_types: unknown SAN type 'x400'"),
        ({"colour": "blue"}, "colour: unknown key"),
        ({"names": {"dns": {"allow": ["("]}}}, "bad regular expression"),
        # every list checked against a closed set, and every converted list, refuses the same way
        ({"protocols": ["gopher"]}, "protocols: unknown protocol 'gopher'"),
        ({"auth_methods": ["telepathy"]}, "auth_methods: unknown auth method 'telepathy'"),
        ({"names": {"subject_attributes": ["DC"]}}, "names.subject_attributes: unknown attribute 'DC'"),
        ({"names": {"ip": {"deny": ["10.0.0.300/8"]}}}, "names.ip.deny: '10.0.0.300/8' is not an IP network"),
        ({"extensions": {"key_usage": ["crl_sign"]}}, "extensions.key_usage: unknown key usage 'crl_sign'"),
        ({"extensions": {"extended_key_usage": ["anyEKU"]}}, "extensions.extended_key_usage: unknown EKU 'anyEKU'"),
        ({"extensions": {"policies": ["2.5.29.x"]}}, "extensions.policies: '2.5.29.x' is not an OID"),
    ],
)
def test_profile_errors_name_the_key(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_profile(data, "p", "p.toml")
    assert message in str(err.value)


def test_workers_default_one_and_validated(ca_dir: Path) -> None:
    assert read_config(ca_dir / "tetra.toml", environ={}).workers == 1
    assert read_config(ca_dir / "tetra.toml", environ={"TETRA_SERVER__WORKERS": "2"}).workers == 2
    with pytest.raises(ConfigError) as err:
        read_config(ca_dir / "tetra.toml", environ={"TETRA_SERVER__WORKERS": "0"})
    assert "server.workers" in str(err.value)


def test_listener_limits_default_overridden_and_validated(ca_dir: Path) -> None:
    """DOS-08, DOS-09, DOS-10, DOS-11: the bounds every listener applies, from [server] or the environment."""
    limits = read_config(ca_dir / "tetra.toml", environ={}).limits
    assert limits == ListenerLimits(
        header_timeout=10.0, body_timeout=30.0, keepalive_timeout=75.0, max_connections_per_address=64
    )
    env = {
        "TETRA_SERVER__HEADER_TIMEOUT_SECONDS": "2",
        "TETRA_SERVER__BODY_TIMEOUT_SECONDS": "0.5",
        "TETRA_SERVER__KEEPALIVE_TIMEOUT_SECONDS": "5",
        "TETRA_SERVER__MAX_CONNECTIONS_PER_ADDRESS": "1000",
    }
    assert read_config(ca_dir / "tetra.toml", environ=env).limits == ListenerLimits(2.0, 0.5, 5.0, 1000)
    for key, value in (
        ("HEADER_TIMEOUT_SECONDS", "0"),
        ("BODY_TIMEOUT_SECONDS", "-1"),
        ("KEEPALIVE_TIMEOUT_SECONDS", '"soon"'),
        ("MAX_CONNECTIONS_PER_ADDRESS", "0"),
    ):
        with pytest.raises(ConfigError) as err:
            read_config(ca_dir / "tetra.toml", environ={f"TETRA_SERVER__{key}": value})
        assert f"server.{key.lower()}" in str(err.value)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("TETRA_SERVER__WORKERS", "zero", "server.workers"),
        ("TETRA_SERVER__HEADER_TIMEOUT_SECONDS", "-1", "server.header_timeout_seconds"),
        ("TETRA_ACME__VALIDATION__HTTP_PORT", '"x"', "acme.validation.http_port"),
        ("TETRA_SERVER__NO_SUCH_KEY", "1", "server.no_such_key"),
        ("TETRA_NO_SUCH_SECTION__KEY", "1", "no_such_section"),
    ],
)
def test_a_bad_environment_override_is_blamed_on_the_variable(
    ca_dir: Path, variable: str, value: str, named: str
) -> None:
    """An override from the environment that does not parse names the variable, not the file
    (which the operator would search in vain)."""
    with pytest.raises(ConfigError) as err:
        read_config(ca_dir / "tetra.toml", environ={variable: value})
    message = str(err.value)
    assert message.startswith(f"environment {variable}: {named}"), message
    assert "tetra.toml" not in message
