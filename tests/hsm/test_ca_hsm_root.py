"""A root whose key lives on a SoftHSM2 token signs intermediates: `tetra ca init-root
--pkcs11-uri` and `tetra ca init-intermediate --parent-pkcs11-uri`; the root key stays sensitive and
non-extractable. CAL-05: the root's token absent, its module unreadable or its PIN wrong is one
line, exit 2, and no half-made CA (no files, no token object for the new key, config untouched)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from server.cli.new_key import make_new_key
from tests.cli_here import tetra_here
from tests.hsm.conftest import fresh_label, token_uri
from tests.integration.test_cli import assert_clean_error
from tests.pkilint_check import assert_certificate_lints_clean

# Reads a key's attributes in a process of its own (the test process has the module loaded on
# its token thread already): {"private": {...}, "public": bool} or {} when no key has the label.
_ATTRIBUTES = """
import json, sys, pkcs11
from pkcs11.constants import Attribute, ObjectClass
module, token_label, pin, label = sys.argv[1:]
token = pkcs11.lib(module).get_token(token_label=token_label)
with token.open(user_pin=pin) as s:
    private = list(s.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}))
    public = list(s.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label}))
    out = {}
    if private:
        attrs = private[0].get_attributes([Attribute.SENSITIVE, Attribute.EXTRACTABLE])
        out["private"] = {"sensitive": attrs[Attribute.SENSITIVE], "extractable": attrs[Attribute.EXTRACTABLE]}
    if public:
        out["public"] = True
print(json.dumps(out))
"""


def _key_on_token(module: str, token: str, pin: str, label: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _ATTRIBUTES, module, token, pin, label], capture_output=True, text=True, check=True
    )
    found: dict[str, object] = json.loads(done.stdout)
    return found


def _init_root(out_dir: Path, uri: str, module: str, pin: str) -> subprocess.CompletedProcess[str]:
    return tetra_here("ca", "init-root", "--name", "hsm-root", "--common-name", "HSM Root",
                      "--out-dir", str(out_dir), "--pkcs11-uri", uri, "--module", module, "--pin-env", "HSM_PIN",
                      env={"HSM_PIN": pin})  # fmt: skip


def _init_intermediate(
    name: str, out_dir: Path, root_pem: Path, parent: list[str], new_key: list[str], config: Path, pins: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return tetra_here("ca", "init-intermediate", "--name", name, "--out-dir", str(out_dir),
                      "--parent-cert", str(root_pem), *parent, *new_key, "--add-to-config", str(config),
                      env=pins)  # fmt: skip


@pytest.fixture
def hsm_root(tmp_path: Path, softhsm_module: str, softhsm_token: str, softhsm_pin: str) -> tuple[Path, str]:
    """A root made by `tetra ca init-root` with its key on the token: (certificate, key URI)."""
    uri = token_uri(softhsm_token, fresh_label("root"))
    made = _init_root(tmp_path / "root", uri, softhsm_module, softhsm_pin)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["hsm-root.pem"]  # no key file
    return tmp_path / "root" / "hsm-root.pem", uri


def test_token_root_signs_an_intermediate(
    ca_dir: Path, tmp_path: Path, hsm_root: tuple[Path, str], softhsm_module: str, softhsm_token: str, softhsm_pin: str
) -> None:
    """init-root on the token (key sensitive, never extractable); init-intermediate signs with it
    through --parent-pkcs11-uri, the new CA's key on the token too; the intermediate verifies
    against the root (cryptography and `openssl verify`) and both pass pkilint. (CAL-05 set-up)"""
    root_pem, root_uri = hsm_root
    label = root_uri.rsplit("object=", 1)[1]
    assert _key_on_token(softhsm_module, softhsm_token, softhsm_pin, label) == {
        "private": {"sensitive": True, "extractable": False},
        "public": True,
    }
    new_label = fresh_label("int")
    parent = ["--parent-pkcs11-uri", root_uri, "--parent-module", softhsm_module, "--parent-pin-env", "ROOT_PIN"]
    new_key = ["--pkcs11-uri", token_uri(softhsm_token, new_label), "--module", softhsm_module, "--pin-env", "HSM_PIN"]
    pins = {"ROOT_PIN": softhsm_pin, "HSM_PIN": softhsm_pin}
    made = _init_intermediate("hsm-int", tmp_path / "int", root_pem, parent, new_key, ca_dir / "tetra.toml", pins)
    assert made.returncode == 0, made.stderr
    assert 'backend = "pkcs11"' in (ca_dir / "tetra.toml").read_text()
    root = x509.load_pem_x509_certificate(root_pem.read_bytes())
    intermediate = x509.load_pem_x509_certificate((tmp_path / "int" / "hsm-int.pem").read_bytes())
    intermediate.verify_directly_issued_by(root)
    verified = subprocess.run(["openssl", "verify", "-CAfile", str(root_pem), str(tmp_path / "int" / "hsm-int.pem")],
                              capture_output=True, text=True)  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert _key_on_token(softhsm_module, softhsm_token, softhsm_pin, new_label)["private"] == {
        "sensitive": True,
        "extractable": False,
    }
    for cert in (root, intermediate):
        assert_certificate_lints_clean(cert.public_bytes(Encoding.DER))


@pytest.mark.parametrize("fault", ["wrong PIN", "missing token", "unreadable module"])
def test_root_token_fault_leaves_nothing_half_made(
    ca_dir: Path,
    tmp_path: Path,
    hsm_root: tuple[Path, str],
    softhsm_module: str,
    softhsm_token: str,
    softhsm_pin: str,
    fault: str,
) -> None:
    """CAL-05: the root's PIN wrong, its token absent (a URI naming a token that does not exist), or
    its module unreadable: one line, exit 2; no files in --out-dir, no token object for the new
    CA's key, the config as it was."""
    root_pem, root_uri = hsm_root
    root_pin, module = softhsm_pin, softhsm_module
    if fault == "wrong PIN":
        root_pin = "9999"
    elif fault == "missing token":
        root_uri = root_uri.replace(f"token={softhsm_token}", "token=no-such-token")
    else:
        module = str(tmp_path / "missing" / "libpkcs11.so")
    new_label = fresh_label("half")
    parent = ["--parent-pkcs11-uri", root_uri, "--parent-module", module, "--parent-pin-env", "ROOT_PIN"]
    new_key = ["--pkcs11-uri", token_uri(softhsm_token, new_label), "--module", softhsm_module, "--pin-env", "HSM_PIN"]
    config = ca_dir / "tetra.toml"
    before = config.read_text()
    out_dir = tmp_path / "half"
    pins = {"ROOT_PIN": root_pin, "HSM_PIN": softhsm_pin}
    failed = _init_intermediate("half-ca", out_dir, root_pem, parent, new_key, config, pins)
    assert_clean_error(failed, "the parent's key")
    assert failed.returncode == 2
    assert "9999" not in failed.stderr
    assert not out_dir.exists() or not any(out_dir.iterdir())
    assert config.read_text() == before
    assert _key_on_token(softhsm_module, softhsm_token, softhsm_pin, new_label) == {}

    # The same with the new key in a file: no key file either.
    file_key = ["--passphrase-file", str(ca_dir / "secrets" / "passphrase")]
    failed = _init_intermediate("half-ca", out_dir, root_pem, parent, file_key, config, pins)
    assert_clean_error(failed, "the parent's key")
    assert not out_dir.exists() or not any(out_dir.iterdir())
    assert config.read_text() == before


def test_a_new_token_key_is_removed_when_the_command_fails_after_making_it(
    tmp_path: Path, softhsm_module: str, softhsm_token: str, softhsm_pin: str
) -> None:
    """CAL-05: what init-root, init-intermediate and ca csr call when they fail after the new key
    exists: the key pair leaves the token (and a key file its directory)."""
    label = fresh_label("undo")
    args = argparse.Namespace(pkcs11_uri=token_uri(softhsm_token, label), module=softhsm_module, key_type="ec-p256")
    made = make_new_key(args, tmp_path / "unused.key", softhsm_pin.encode())
    assert "private" in _key_on_token(softhsm_module, softhsm_token, softhsm_pin, label)
    made.remove()
    assert _key_on_token(softhsm_module, softhsm_token, softhsm_pin, label) == {}

    in_file = make_new_key(argparse.Namespace(pkcs11_uri="", key_type="ec-p256"), tmp_path / "k.key", b"secret")
    assert (tmp_path / "k.key").exists()
    in_file.remove()
    assert not (tmp_path / "k.key").exists()


async def test_csr_key_on_the_token_then_import_and_issue(
    ca_dir: Path,
    tmp_path: Path,
    softhsm_module: str,
    softhsm_token: str,
    softhsm_pin: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """CAL-04 with a token: `ca csr --pkcs11-uri` makes a non-extractable key and registers where it
    is (no PIN stored); `ca import` opens it with the PIN from the environment and the CA built from
    the config issues with it."""
    from ca.csr import enrollment_from_csr
    from ca.enrollment import Issued
    from server.wiring import build_ca, read_config
    from tests.helpers import enroll, make_csr
    from tests.integration.test_ca_import import CA_EXTENSIONS, OPERATOR, _add_profile, _external_root, _sign

    monkeypatch.setenv("HSM_PIN", softhsm_pin)
    cfg = str(ca_dir / "tetra.toml")
    label = fresh_label("csr")
    uri = token_uri(softhsm_token, label)
    made = tetra_here("ca", "csr", "--config", cfg, "--name", "ext-ca", "--subject", "CN=Token Issuing CA,O=Example",
                 "--out", str(tmp_path / "ext.csr"), "--pkcs11-uri", uri, "--module", softhsm_module,
                 "--pin-env", "HSM_PIN")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert _key_on_token(softhsm_module, softhsm_token, softhsm_pin, label)["private"] == {
        "sensitive": True,
        "extractable": False,
    }
    root = _external_root(tmp_path / "ext", "Ext Root")
    signed = _sign(tmp_path / "ext.csr", root, tmp_path / "ext.pem", CA_EXTENSIONS)
    imported = tetra_here(
        "ca", "import", "--config", cfg, "--name", "ext-ca", "--cert", str(signed), "--chain", str(root[1])
    )
    assert imported.returncode == 0, imported.stderr

    _add_profile(ca_dir)
    ca = await build_ca(read_config(ca_dir / "tetra.toml"))
    try:
        assert softhsm_pin not in json.dumps([a.key.to_json() for a in ca.authorities.values() if a.key])
        csr, _ = make_csr(["token-leaf.example.com"])
        request = enrollment_from_csr(csr, protocol="cli", profile_name="ext-client", requester=OPERATOR)
        outcome = await enroll(ca, request)
        assert isinstance(outcome, Issued) and outcome.issuer == "ext-ca"
        outcome.certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(signed.read_bytes()))
        assert_certificate_lints_clean(outcome.certificate.public_bytes(Encoding.DER))
    finally:
        await ca.close()
