"""docs/hsm.md runs as written (CAL-08): every ```sh block of the guide, in order, in one
shell session in an empty directory, against the `tetra serve` the guide itself starts.

The one substitution: the guide's ports 127.0.0.1:8080, :8443 and :8444 become free ones. The
guide's `tetra serve ... &` line is started by the test (the same line without the `&`,
so the test can stop and restart it); every other block runs in `ShellSession` as pasted.
Each step then checks what the guide says it shows: a token, an issuing CA on it added to
the config with relative paths, a certificate issued through the API that chains to it and
passes pkilint, read-only commands without the PIN, the PIN read from a file, 503 when the
token is gone, and readiness again after it comes back and the server restarts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.doc_blocks import Block, blocks
from tests.doc_shell import ShellSession
from tests.pkilint_check import assert_certificate_lints_clean
from tests.tetra_process import free_port

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "hsm.md"
SERVE = "tetra serve --config var/tetra.toml > serve.log 2>&1 &"
# The guide's sections with commands, in order; a section added or moved fails here first.
HEADINGS = [
    "A token",
    "A CA whose root signs the new issuing CA",
    "The issuing CA's key on the token",
    "The issuing CA's key on the token",
    "Serving",
    "Serving",
    "A certificate signed on the token",
    "Commands that only read need no PIN",
    "The PIN in a file",
    "When the token is gone",
    "When the token is gone",
]


class GuideShell(ShellSession):
    """The reader's terminal, with the guide's ports swapped for free ones and its
    background server under the test's control."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        super().__init__(cwd, env)
        self.ports = {f"127.0.0.1:{port}": f"127.0.0.1:{free_port()}" for port in (8080, 8443, 8444)}
        self.server: subprocess.Popen[bytes] | None = None

    def ported(self, text: str) -> str:
        for guide_port, ours in self.ports.items():
            text = text.replace(guide_port, ours)
        return text

    def run(self, block: Block) -> str:
        return self.run_ok(self.ported(block.text))

    @property
    def base(self) -> str:
        return "http://" + self.ports["127.0.0.1:8080"]

    def serve(self, block: Block) -> None:
        """The guide's background `tetra serve`, as its own process; returns once it serves."""
        assert block.commands == [SERVE], block.commands
        (self.cwd / "serve.log").unlink(missing_ok=True)
        script = "\n".join([*self.carried, "exec " + SERVE.removesuffix("&").strip()])
        # `tetra init` wrote the management listener's 127.0.0.1:8444 into the config: ours instead.
        env = {**self.env, "TETRA_MANAGE__LISTEN": self.ports["127.0.0.1:8444"]}
        self.server = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=self.cwd, env=env)
        deadline = time.monotonic() + 60
        log = self.cwd / "serve.log"
        while "Tetra is serving" not in (log.read_text(errors="replace") if log.exists() else ""):
            assert self.server.poll() is None, f"tetra serve exited: {log.read_text(errors='replace')[-3000:]}"
            assert time.monotonic() < deadline, f"tetra serve did not start: {log.read_text(errors='replace')[-3000:]}"
            time.sleep(0.2)

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=10)


def _reader_env(home: Path) -> dict[str, str]:
    """A shell with Tetra on PATH (the venv running the tests) and nothing of ours set."""
    dropped = ("SOFTHSM2_CONF", "HSM_PIN", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETRA_") and k not in dropped}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["HOME"] = str(home)
    return env


@pytest.fixture
def shell(tmp_path: Path, softhsm_module: str) -> Iterator[GuideShell]:
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    session = GuideShell(tmp_path / "work", _reader_env(tmp_path / "home"))
    try:
        yield session
    finally:
        session.stop()


def _chain_to_hsm_ca(leaf_pem: bytes, work: Path) -> x509.Certificate:
    leaf = x509.load_pem_x509_certificates(leaf_pem)[0]
    hsm_ca = x509.load_pem_x509_certificate((work / "var/ca/hsm-ca.pem").read_bytes())
    leaf.verify_directly_issued_by(hsm_ca)
    assert hsm_ca.subject.rfc4514_string() == "CN=hsm-ca"
    return leaf


def test_the_hsm_guide_runs_as_written(shell: GuideShell) -> None:
    """CAL-08: every command block of docs/hsm.md, in order, with the results it promises."""
    steps = [b for b in blocks(GUIDE) if b.language == "sh"]
    assert [b.heading for b in steps] == HEADINGS
    (token, init, intermediate, profile, serve, ready, issue, read_only, pin_file, gone, back) = steps
    work = shell.cwd

    shell.run(token)
    assert any((work / "softhsm" / "tokens").iterdir()), "softhsm2-util made no token"
    shell.run(init)
    shell.run(intermediate)
    config = (work / "var" / "tetra.toml").read_text()
    assert 'certificate = "ca/hsm-ca.pem"' in config and 'pin_env = "HSM_PIN"' in config and "1234" not in config
    shell.run(profile)
    assert (work / "var/profiles/hsm-server.toml").read_text().startswith('issuer = "hsm-ca"\n')

    shell.serve(serve)
    checks = json.loads(shell.run(ready))["checks"]
    assert checks["signer:hsm-ca"] == "ok", checks

    out = shell.run(issue)
    assert "hsm-ca" in out.splitlines() and "www.pem: OK" in out, out
    answer = json.loads((work / "www.json").read_text())
    leaf = _chain_to_hsm_ca((work / "www.pem").read_bytes(), work)
    assert answer["issuer"] == "hsm-ca" and answer["serial"] == format(leaf.serial_number, "x")
    # RFC 5280 (pkix): under the CA/B profile the guide's .test name and 127.0.0.1 URLs are,
    # by design, internal names.
    assert_certificate_lints_clean(leaf.public_bytes(Encoding.DER), "pkix")

    listing = shell.run(read_only)
    assert answer["serial"] in listing and "hsm-server" in listing, listing
    assert "pkcs11 pkcs11:token=tetra;object=hsm-ca" in listing and "audit" in listing.lower(), listing
    # What the guide says a signing command prints without the PIN (before pin_file exists).
    refused = shell.sh("env -u HSM_PIN tetra issue --config var/tetra.toml --csr www.csr --profile hsm-server")
    assert refused.returncode != 0
    assert refused.stderr.strip() == "tetra: error: signer hsm-ca PIN: environment variable HSM_PIN is not set"

    shell.run(pin_file)
    assert (work / "var/secrets/hsm-pin").stat().st_mode & 0o077 == 0
    _chain_to_hsm_ca((work / "www-cli.pem").read_bytes(), work)

    out = shell.run(gone)
    assert out.splitlines()[0] == "503", out
    assert "unavailable" in out.splitlines()[1], out
    assert "re-opening the session and retrying once" in (work / "serve.log").read_text()

    shell.run(back)
    shell.stop()
    shell.serve(serve)
    checks = json.loads(shell.run(ready))["checks"]
    assert checks["signer:hsm-ca"] == "ok", checks
