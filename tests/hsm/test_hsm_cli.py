"""The operator's HSM path end to end: `tetra ca init-intermediate --pkcs11-uri`, `tetra issue`,
and the read-only commands that must not ask for the PIN."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.cli_here import tetra_here
from tests.helpers import make_csr
from tests.hsm.conftest import fresh_label, token_uri
from tests.integration.test_cli import assert_clean_error


def test_intermediate_on_token_via_cli_then_issue(
    ca_dir: Path, tmp_path: Path, softhsm_module: str, softhsm_token: str, softhsm_pin: str
) -> None:
    uri = token_uri(softhsm_token, fresh_label("cli"))
    env = {"HSM_PIN": softhsm_pin}
    cfg = ca_dir / "tetra.toml"
    made = tetra_here(
        "ca",
        "init-intermediate",
        "--name",
        "hsm-cli-ca",
        "--out-dir",
        str(tmp_path),
        "--parent-cert",
        str(ca_dir / "ca" / "root.pem"),
        "--parent-key",
        str(ca_dir / "keys" / "root.key"),
        "--parent-passphrase-file",
        str(ca_dir / "secrets" / "passphrase"),
        "--pkcs11-uri",
        uri,
        "--module",
        softhsm_module,
        "--pin-env",
        "HSM_PIN",
        "--key-type",
        "ec-p384",
        "--add-to-config",
        str(cfg),
        env=env,
    )
    assert made.returncode == 0, made.stderr
    assert 'backend = "pkcs11"' in cfg.read_text() and softhsm_pin not in cfg.read_text()
    profile = (ca_dir / "profiles" / "tls-client.toml").read_text()
    (ca_dir / "profiles" / "hsm-client.toml").write_text('issuer = "hsm-cli-ca"\n' + profile)
    csr, _ = make_csr(["hsm-cli.example.com"], cn="hsm-cli")
    (tmp_path / "r.csr").write_bytes(csr.public_bytes(Encoding.PEM))
    issued = tetra_here(
        "issue",
        "--config",
        str(cfg),
        "--csr",
        str(tmp_path / "r.csr"),
        "--profile",
        "hsm-client",
        "--out",
        str(tmp_path / "leaf.pem"),
        env=env,
    )
    assert issued.returncode == 0, issued.stderr
    leaf, ca_cert = x509.load_pem_x509_certificates((tmp_path / "leaf.pem").read_bytes())
    leaf.verify_directly_issued_by(ca_cert)
    assert ca_cert.subject.rfc4514_string() == "CN=hsm-cli-ca"
    # Reading the store opens no signer: no PIN asked for (the environment has none here).
    for command in (["inventory", "list"], ["requests", "list"], ["audit", "verify"]):
        read = tetra_here(*command, "--config", str(cfg), env={"HSM_PIN": ""})
        assert read.returncode == 0, (command, read.stderr)
    listed = tetra_here("inventory", "list", "--config", str(cfg), env={"HSM_PIN": ""})
    assert format(leaf.serial_number, "x") in listed.stdout
    # Signing does need it: one line.
    assert_clean_error(tetra_here("issue", "--config", str(cfg), "--csr", str(tmp_path / "r.csr"), "--profile",
                             "hsm-client", env={"HSM_PIN": ""}))  # fmt: skip
    # Same label twice: refused, one line.
    again = tetra_here(
        "ca",
        "init-root",
        "--name",
        "dup",
        "--out-dir",
        str(tmp_path / "dup"),
        "--pkcs11-uri",
        uri,
        "--module",
        softhsm_module,
        "--pin-env",
        "HSM_PIN",
        env=env,
    )
    assert_clean_error(again)
    # Wrong PIN: one line, no traceback, and the PIN is not echoed.
    wrong = tetra_here(
        "issue",
        "--config",
        str(cfg),
        "--csr",
        str(tmp_path / "r.csr"),
        "--profile",
        "hsm-client",
        env={"HSM_PIN": "9999"},
    )
    assert_clean_error(wrong)
    assert "9999" not in wrong.stderr
