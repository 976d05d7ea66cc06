"""ca.signers.registry: one spec type, one parser and one opener for every key the CA, the RAs
and the OCSP responder use; bad specs fail with one line naming the file and key."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from ca.errors import ConfigError
from ca.revocation.settings import RESPONDER_SIGNER, parse_ocsp
from ca.signers.pkcs11 import Pkcs11Signer
from ca.signers.registry import BACKENDS, SignerSpec, open_signer, parse_signer_spec
from ca.signers.software import SoftwareSigner, save_encrypted_key
from ca.tomlread import Table

CONF = "/etc/tetra/tetra.toml"


def _table(data: dict[str, Any], prefix: str = "signers.ca.") -> Table:
    return Table(data, CONF, prefix)


def _one_line_error(excinfo: pytest.ExceptionInfo[ConfigError], key: str) -> str:
    text = str(excinfo.value)
    assert "\n" not in text
    assert key in text, text
    return text


@pytest.fixture
def key_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str, ec.EllipticCurvePrivateKey]:
    """An encrypted PKCS#8 key and the environment variable holding its passphrase."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "keys" / "ca.key"
    save_encrypted_key(key, path, b"s3cret")
    env = f"TETRA_TEST_SIGNER_PASS_{secrets.token_hex(4)}"
    monkeypatch.setenv(env, "s3cret")
    return path, env, key


async def test_software_backend_opens(key_file: tuple[Path, str, ec.EllipticCurvePrivateKey]) -> None:
    path, env, key = key_file
    table = Table({"backend": "software", "key_file": str(path), "passphrase_env": env}, CONF, "signers.ca.")
    spec = parse_signer_spec(table, "ca")
    table.finish()
    assert spec == SignerSpec("ca", "software", key_file=path, passphrase_env=env)
    signer = await open_signer(spec)
    try:
        assert isinstance(signer, SoftwareSigner) and signer.name == "ca"
        assert signer.public_key() == key.public_key()
        assert signer.needs_signature_check is False
        await signer.check()
    finally:
        await signer.close()


def test_relative_paths_are_taken_from_the_config_files_directory() -> None:
    table = _table({"backend": "software", "key_file": "keys/ca.key", "passphrase_file": "secrets/pass"})
    spec = parse_signer_spec(table, "ca")
    assert spec.key_file == Path("/etc/tetra/keys/ca.key")
    assert spec.passphrase_file == "/etc/tetra/secrets/pass"


def test_pkcs11_spec_reads_module_uri_pin_source_and_timeout() -> None:
    table = _table(
        {"backend": "pkcs11", "module": "/m.so", "uri": "pkcs11:token=t;object=k", "pin_env": "P", "timeout_seconds": 2}
    )
    spec = parse_signer_spec(table, "hsm")
    table.finish()
    assert spec == SignerSpec(
        "hsm", "pkcs11", module="/m.so", uri="pkcs11:token=t;object=k", pin_env="P", timeout_seconds=2.0
    )


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"backend": "software", "passphrase_env": "X"}, "signers.ca.key_file: required key is missing"),
        ({"backend": "software", "key_file": "", "passphrase_env": "X"}, "signers.ca.key_file"),
        ({"backend": "software", "key_file": 3, "passphrase_env": "X"}, "signers.ca.key_file: expected string"),
        ({"backend": "software", "key_file": "k.pem"}, "signers.ca.passphrase_env"),
        ({"backend": "pkcs11", "module": "/m.so", "uri": "pkcs11:object=k", "pin": "1234"}, "signers.ca.pin"),
        ({"backend": "pkcs11", "uri": "pkcs11:object=k", "pin_env": "P"}, "signers.ca.module"),
        ({"backend": "pkcs11", "module": "/m.so", "uri": "pkcs11:object=k"}, "signers.ca.pin_env"),
        (
            {"backend": "pkcs11", "module": "/m.so", "uri": "pkcs11:object=k", "pin_env": "P", "timeout_seconds": 0},
            "signers.ca.timeout_seconds: must be positive",
        ),
    ],
)
def test_bad_spec_is_a_one_line_config_error_naming_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_signer_spec(_table(data), "ca")
    assert _one_line_error(err, key).startswith(CONF)


def test_keys_of_another_backend_are_unknown() -> None:
    table = _table({"backend": "software", "key_file": "k.pem", "passphrase_env": "X", "module": "/m.so"})
    parse_signer_spec(table, "ca")
    with pytest.raises(ConfigError) as err:
        table.finish()
    _one_line_error(err, "signers.ca.module: unknown key")


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        parse_signer_spec(_table({"backend": "yubikey"}), "ca")
    assert "signers.ca.backend" in _one_line_error(err, "'yubikey' is not one of software, pkcs11")
    with pytest.raises(ConfigError) as err:
        parse_signer_spec(_table({}), "ca", "yubikey")
    _one_line_error(err, "unknown backend 'yubikey'")


async def test_open_refuses_an_unknown_backend_or_a_spec_missing_its_key() -> None:
    with pytest.raises(ConfigError) as err:
        await open_signer(SignerSpec("ca", "yubikey"))
    _one_line_error(err, "signer ca: unknown backend 'yubikey' (known: software, pkcs11)")
    with pytest.raises(ConfigError) as err:
        await open_signer(SignerSpec("ca", "software", passphrase_env="X"))
    _one_line_error(err, "key_file")


async def test_missing_secret_names_the_signer(key_file: tuple[Path, str, ec.EllipticCurvePrivateKey]) -> None:
    path, _, _ = key_file
    unset = f"TETRA_TEST_UNSET_{secrets.token_hex(4)}"
    with pytest.raises(ConfigError) as err:
        await open_signer(SignerSpec("ca", "software", key_file=path, passphrase_env=unset))
    _one_line_error(err, f"signer ca passphrase: environment variable {unset} is not set")


async def test_environment_first_then_file(
    key_file: tuple[Path, str, ec.EllipticCurvePrivateKey], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given both, the variable wins when set (a wrong one fails) and the file serves when it is not."""
    path, env, _ = key_file
    (tmp_path / "pass").write_text("s3cret\n")
    both = SignerSpec("ca", "software", key_file=path, passphrase_env=env, passphrase_file=str(tmp_path / "pass"))
    assert isinstance(await open_signer(both), SoftwareSigner)
    monkeypatch.setenv(env, "wrong")
    with pytest.raises(ConfigError):
        await open_signer(both)
    monkeypatch.delenv(env)
    assert isinstance(await open_signer(both), SoftwareSigner)


def test_every_backend_says_whether_callers_must_verify() -> None:
    """CORE-11: part of the Signer protocol, so no caller guesses a default."""
    assert set(BACKENDS) == {"software", "pkcs11"}
    assert SoftwareSigner.needs_signature_check is False  # in-process key: nothing to fault
    assert Pkcs11Signer.needs_signature_check is False  # verified inside each token sign()


def test_ocsp_responder_key_maps_onto_the_same_spec() -> None:
    """[ocsp.responder_key] keeps its own key names (source, file) and is read by the same parser."""
    file_key = {"source": "file", "file": "ocsp.key", "passphrase_env": "OCSP_PASS"}
    settings = parse_ocsp(Table({"responder_key": file_key}, CONF, "ocsp."))
    assert settings.key.signer == SignerSpec(
        RESPONDER_SIGNER, "software", key_file=Path("/etc/tetra/ocsp.key"), passphrase_env="OCSP_PASS"
    )
    token_key = {"source": "pkcs11", "module": "/m.so", "uri": "pkcs11:object=ocsp", "pin_file": "pin"}
    settings = parse_ocsp(Table({"responder_key": token_key}, CONF, "ocsp."))
    assert settings.key.signer == SignerSpec(
        RESPONDER_SIGNER, "pkcs11", module="/m.so", uri="pkcs11:object=ocsp", pin_file="/etc/tetra/pin"
    )
    ephemeral = parse_ocsp(Table({"responder_key": {"key_type": "ec-p256", "file": "unused.key"}}, CONF, "ocsp."))
    assert ephemeral.key.signer is None and ephemeral.key.key_type == "ec-p256"


def test_ocsp_responder_key_errors_name_the_ocsp_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse_ocsp(Table({"responder_key": {"source": "file", "passphrase_env": "X"}}, CONF, "ocsp."))
    _one_line_error(err, "ocsp.responder_key.file: required key is missing")
    with pytest.raises(ConfigError) as err:
        parse_ocsp(
            Table({"responder_key": {"source": "pkcs11", "module": "/m.so", "uri": "pkcs11:object=k"}}, CONF, "ocsp.")
        )
    _one_line_error(err, "ocsp.responder_key.pin_env")
