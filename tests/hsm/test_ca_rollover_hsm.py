"""`tetra ca rollover --new-key` of an issuing CA whose key is on a SoftHSM2 token: the new key is
made on the same token with the generation's name as its label, unlocked with the same PIN
source, and the generation issues through it once activated."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.signers.pkcs11 import Pkcs11Signer
from tests.cli_here import tetra_here
from tests.helpers import make_csr
from tests.hsm.conftest import fresh_label, token_uri
from tests.integration.test_cli import assert_clean_error
from tests.pkilint_check import assert_certificate_lints_clean


def test_new_key_rollover_on_the_token(
    ca_dir: Path, tmp_path: Path, softhsm_module: str, softhsm_token: str, softhsm_pin: str
) -> None:
    """CAL-05 (a PIN that cannot be read stops the rollover before any key is made), then a
    new-key rollover on the token, activation, and a leaf issued through the new token key."""
    name = f"hsm-roll-{uuid.uuid4().hex[:6]}"
    cfg = ca_dir / "tetra.toml"
    passphrase = str(ca_dir / "secrets/passphrase")
    root_key = ["--parent-key", str(ca_dir / "keys/root.key"), "--parent-passphrase-file", passphrase]
    made = tetra_here(
        "ca", "init-intermediate", "--name", name, "--out-dir", str(tmp_path), "--parent-cert",
        str(ca_dir / "ca/root.pem"), *root_key, "--pkcs11-uri", token_uri(softhsm_token, fresh_label("roll")),
        "--module", softhsm_module, "--pin-env", "HSM_PIN", "--add-to-config", str(cfg),
        env={"HSM_PIN": softhsm_pin},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    rollover = ("ca", "rollover", name, "--new-key", *root_key, "--config", str(cfg))

    assert_clean_error(tetra_here(*rollover, env={"HSM_PIN": ""}), "the PIN is empty")
    with sqlite3.connect(ca_dir / "tetra.db") as db:
        assert db.execute("SELECT count(*) FROM authorities WHERE family = ?", (name,)).fetchone() == (1,)

    done = tetra_here(*rollover, env={"HSM_PIN": softhsm_pin})
    assert done.returncode == 0, done.stderr
    assert f"key: pkcs11 pkcs11:token={softhsm_token};object={name}.2" in done.stdout, done.stdout
    activated = tetra_here("ca", "activate", f"{name}.2", "--config", str(cfg), env={"HSM_PIN": softhsm_pin})
    assert activated.returncode == 0, activated.stderr

    profile = (ca_dir / "profiles/tls-client.toml").read_text()
    (ca_dir / "profiles/hsm-roll.toml").write_text(f'issuer = "{name}"\n' + profile)
    csr, _ = make_csr(["hsm-roll.example.com"], cn="hsm-roll")
    (tmp_path / "r.csr").write_bytes(csr.public_bytes(Encoding.PEM))
    issue = ("issue", "--config", str(cfg), "--csr", str(tmp_path / "r.csr"), "--profile", "hsm-roll")
    issued = tetra_here(*issue, "--out", str(tmp_path / "leaf.pem"), env={"HSM_PIN": softhsm_pin})
    assert issued.returncode == 0, issued.stderr
    leaf, new_ca = x509.load_pem_x509_certificates((tmp_path / "leaf.pem").read_bytes())
    old_ca = x509.load_pem_x509_certificate((tmp_path / f"{name}.pem").read_bytes())
    assert new_ca != old_ca and new_ca.subject == old_ca.subject
    leaf.verify_directly_issued_by(new_ca)
    new_ca.verify_directly_issued_by(x509.load_pem_x509_certificate((ca_dir / "ca/root.pem").read_bytes()))
    assert_certificate_lints_clean(new_ca.public_bytes(Encoding.DER))
    assert_certificate_lints_clean(leaf.public_bytes(Encoding.DER))
    token_key = Pkcs11Signer.open_blocking("check", softhsm_module, token_uri(softhsm_token, f"{name}.2"), softhsm_pin)
    assert token_key.public_key() == new_ca.public_key()


def test_root_rollover_to_a_token_key(
    ca_dir: Path, tmp_path: Path, softhsm_module: str, softhsm_token: str, softhsm_pin: str
) -> None:
    """A root rolled over to a key made on the token: the three link certificates verify with the
    keys that should have signed them, and the new root's key never left the token."""
    label = fresh_label("root")
    uri = token_uri(softhsm_token, label)
    passphrase = str(ca_dir / "secrets/passphrase")
    out = tmp_path / "root2"
    done = tetra_here(
        "ca", "rollover", "root", "--new-key", "--parent-key", str(ca_dir / "keys/root.key"),
        "--parent-passphrase-file", passphrase, "--out-dir", str(out), "--pkcs11-uri", uri,
        "--module", softhsm_module, "--pin-env", "HSM_PIN", "--config", str(ca_dir / "tetra.toml"),
        env={"HSM_PIN": softhsm_pin},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        f"root.2-{k}.pem" for k in ("newWithNew", "newWithOld", "oldWithNew")
    ]
    old = x509.load_pem_x509_certificate((ca_dir / "ca/root.pem").read_bytes())
    nwn, nwo, own = (
        x509.load_pem_x509_certificate((out / f"root.2-{k}.pem").read_bytes())
        for k in ("newWithNew", "newWithOld", "oldWithNew")
    )
    token_key = Pkcs11Signer.open_blocking("check", softhsm_module, uri, softhsm_pin)
    assert token_key.public_key() == nwn.public_key() == nwo.public_key()
    nwn.verify_directly_issued_by(nwn)
    nwo.verify_directly_issued_by(old)
    own.verify_directly_issued_by(nwn)
    for cert in (nwn, nwo, own):
        assert_certificate_lints_clean(cert.public_bytes(Encoding.DER))
    with sqlite3.connect(ca_dir / "tetra.db") as db:
        (signer,) = db.execute("SELECT signer FROM authorities WHERE name = 'root.2'").fetchone()
    assert uri in signer and softhsm_pin not in signer
