"""docs/ca-lifecycle.md runs as written: every ```sh block of the guide, in order, in one shell
session in an empty directory, each checked against what the guide says it shows (CAL-09).

The guide drives the CA commands a reader would: `ca list` and `ca show`, a rollover of the
issuing CA with a new key and its activation, a certificate from the new generation, revoking
the old generation (the root's ARL and OCSP answers signed by the command), renewing them, an
issuing CA under an openssl-made company root (`ca csr`, `ca import`) and a root rollover.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.doc_blocks import blocks
from tests.doc_shell import ShellSession
from tests.pkilint_check import assert_certificate_lints_clean

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "ca-lifecycle.md"
HEADINGS = [
    "What the server knows about its CAs",
    "Replacing the issuing CA",
    "Replacing the issuing CA",
    "Replacing the issuing CA",
    "Withdrawing a CA",
    "Withdrawing a CA",
    "An issuing CA under a company's root",
    "An issuing CA under a company's root",
    "An issuing CA under a company's root",
    "Replacing the root",
]


def _states(listing: str) -> dict[str, str]:
    """NAME -> STATE from `tetra ca list`'s table (the name without its "(default)" mark)."""
    rows = [line.replace(" (default)", "").split() for line in listing.splitlines()[1:] if line.strip()]
    return {row[0]: row[2] for row in rows if not row[0].startswith("warning")}


def _shell(tmp_path: Path) -> ShellSession:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETRA_") and k != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    return ShellSession(tmp_path / "work", env)


def test_the_ca_lifecycle_guide_runs_as_written(tmp_path: Path) -> None:
    """CAL-09 (and, through the commands it runs, CAL-01..04 as an operator meets them)."""
    steps = [b for b in blocks(GUIDE) if b.language == "sh"]
    assert [b.heading for b in steps] == HEADINGS
    (listing, rollover, activate, issue, revoke, renew, csr, external, import_, root) = steps
    shell = _shell(tmp_path)
    work = shell.cwd

    assert _states(shell.run_ok(listing.text)) == {"issuing-ca": "active", "root": "active"}

    out = shell.run_ok(rollover.text)
    assert out.startswith("staged issuing-ca.2: CN=Tetra Demo Issuing CA,O=Tetra"), out
    assert (work / "var/keys/issuing-ca.2.key").exists()

    out = shell.run_ok(activate.text)
    assert _states(out.split("\n", 2)[2]) == {"issuing-ca": "retired", "issuing-ca.2": "active", "root": "active"}

    out = shell.run_ok(issue.text)
    assert out.strip() == "www.pem: OK", out
    leaf = x509.load_pem_x509_certificate((work / "www.pem").read_bytes())
    second = x509.load_pem_x509_certificate((work / "issuing-ca.2.pem").read_bytes())
    first = x509.load_pem_x509_certificate((work / "var/ca/issuing-ca.pem").read_bytes())
    leaf.verify_directly_issued_by(second)
    assert second.public_key() != first.public_key()
    assert_certificate_lints_clean(leaf.public_bytes(Encoding.DER), "pkix")

    out = shell.run_ok(revoke.text)
    assert "issuing-ca revoked (superseded)" in out and "ARL number" in out, out
    assert out.splitlines()[-1].split()[3] == "revoked", out
    assert "ARL number" in shell.run_ok(renew.text)

    shell.run_ok(csr.text)
    request = x509.load_pem_x509_csr((work / "corp-ca.csr").read_bytes())
    assert request.is_signature_valid
    assert request.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    shell.run_ok(external.text)
    out = shell.run_ok(import_.text)
    assert "corp-www.pem: OK" in out.splitlines(), out
    listed = json.loads(shell.run_ok("tetra ca list --format json"))
    states = {line["name"]: (line["kind"], line["state"]) for line in listed["cas"]}
    assert states["corp-ca"] == ("issuing", "active") and states["corp-ca-root"] == ("root", "active")
    assert states["issuing-ca"] == ("issuing", "revoked") and states["issuing-ca.2"] == ("issuing", "active")

    out = shell.run_ok(root.text)
    assert "var/ca/root.2-newWithNew.pem: OK" in out, out
    old_root = x509.load_pem_x509_certificate((work / "var/ca/root.pem").read_bytes())
    new_root = x509.load_pem_x509_certificate((work / "var/ca/root.2-newWithNew.pem").read_bytes())
    new_with_old = x509.load_pem_x509_certificate((work / "var/ca/root.2-newWithOld.pem").read_bytes())
    old_with_new = x509.load_pem_x509_certificate((work / "var/ca/root.2-oldWithNew.pem").read_bytes())
    new_with_old.verify_directly_issued_by(old_root)
    old_with_new.verify_directly_issued_by(new_root)
    assert new_with_old.public_key() == new_root.public_key() and old_with_new.public_key() == old_root.public_key()
    for cert in (new_root, new_with_old, old_with_new):
        assert_certificate_lints_clean(cert.public_bytes(Encoding.DER))
    listed = json.loads(shell.run_ok("tetra ca list --format json"))
    assert {line["name"]: line["state"] for line in listed["cas"]}["root.2"] == "staged"
