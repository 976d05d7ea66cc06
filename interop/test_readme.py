"""The README as a newcomer follows it (OPS-19): a fresh copy of the repository, `make run`,
then every command block of README.md run as written, in that copy, against the server
`make run` started: certbot and lego issue with no DNS, `tetra inventory list` shows both,
`tetra revoke` and `openssl ocsp` then say revoked.

Each block of the README is accounted for here. Blocks that cannot run inside the test
suite are checked another way, named in COVERED_ELSEWHERE: `make test` is what CI runs, the
development commands are checked as make targets, the HSM and PostgreSQL blocks must be
word for word in their guides, whose own tests run them. A new block under a heading this
file does not know fails `test_every_block_is_accounted_for`.

The copy holds the tracked files as they are in the work tree (what a clone of this commit
holds in CI), so `make run` creates its own `.venv` with pip, exactly as for a new user.
It listens on the README's fixed ports (8080, 8443, the management listener's 8444, certbot
and lego on 5002): the test fails at once, naming the port, when something else holds one.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from interop.conftest import built_client, need
from tests.doc_blocks import Block, blocks
from tests.doc_shell import ShellSession

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
PORTS = (8080, 8443, 8444, 5002)
MAKE_RUN_TIMEOUT = 900  # a fresh .venv: pip installs Tetra and its test extra

WALKTHROUGH = ("Tetra CA", "What `make run` gives you", "Your first certificate", "SCEP")
COVERED_ELSEWHERE = {
    "The command line": "test_command_line_synopsis_matches_the_parser",
    "Development": "test_development_commands_are_make_targets",
    "Using an HSM (PKCS#11)": "test_guide_blocks_are_the_guides_own",
    "Using PostgreSQL": "test_guide_blocks_are_the_guides_own",
}
GUIDES = {"Using an HSM (PKCS#11)": REPO / "docs" / "hsm.md", "Using PostgreSQL": REPO / "docs" / "postgresql.md"}


def readme_blocks() -> list[Block]:
    return blocks(README)


def test_every_block_is_accounted_for() -> None:
    """A block added to the README must be run by the walk-through or checked by a named test."""
    known = set(WALKTHROUGH) | set(COVERED_ELSEWHERE)
    stray = [f"line {b.line} under {b.heading!r}" for b in readme_blocks() if b.heading not in known]
    assert not stray, f"README blocks no test runs or checks: {stray}"


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _copy_of_repository(dest: Path) -> None:
    """The tracked files, as they stand in the work tree: what a fresh clone gives a user."""
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    )
    for name in filter(None, tracked):
        source = REPO / name
        if not source.exists():  # deleted in the work tree, not yet committed
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
        target.chmod(source.stat().st_mode & 0o777)


def _newcomer_env(home: Path) -> dict[str, str]:
    """A shell as a new user has it: no Tetra variables, no virtualenv of ours on PATH."""
    ours = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != ours)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETRA_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, "PATH": path, "HOME": str(home)}


class Demo(ShellSession):
    """The copy, its `make run` log, and a terminal in the copy: what one block sets up in
    the shell holds for the blocks after it, as it would for a reader who pastes them one
    after another."""

    def __init__(self, root: Path, env: dict[str, str], log: Path) -> None:
        super().__init__(root, env)
        self.root, self.log = root, log


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    for tool in ("make", "git", "lego", "openssl", "curl"):
        need(tool)
    busy = [p for p in PORTS if not _free(p)]
    assert not busy, f"the README's ports are taken: {busy}; stop what holds them (another `make run`?)"
    base = tmp_path_factory.mktemp("newcomer")
    root = base / "tetra"
    _copy_of_repository(root)
    (base / "home").mkdir()
    # The SCEP blocks use sscep where `make clients` builds it for this user ($HOME/.cache/...):
    # the newcomer's home gets the one `make test` built, as if they had run it themselves.
    (base / "home/.cache/tetra").mkdir(parents=True)
    (base / "home/.cache/tetra/clients").symlink_to(built_client("sscep").parent.parent)
    env = _newcomer_env(base / "home")
    log = base / "make-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["make", "run"], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + MAKE_RUN_TIMEOUT
        while "Tetra is serving" not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"make run exited {proc.returncode}:\n{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"make run did not serve:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        yield Demo(root, env, log)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _blocks_under(heading: str) -> list[Block]:
    found = [b for b in readme_blocks() if b.heading == heading]
    assert found, f"README has no block under {heading!r}"
    return found


def test_quick_start_block_is_make_run_and_make_test(demo: Demo) -> None:
    """The first block: `make run` is what the fixture ran; `make test` is what CI runs."""
    (first,) = _blocks_under("Tetra CA")
    assert [c.split("#")[0].split() for c in first.commands] == [["make", "run"], ["make", "test"]]
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert "Created a demo CA in ./var" in demo.log.read_text()


def test_root_fingerprint_check_matches_init(demo: Demo) -> None:
    """The fingerprint a client computes from /roots.pem is the one `tetra init` printed."""
    (block,) = _blocks_under("What `make run` gives you")
    printed = re.search(r"root SHA-256 fingerprint: ([0-9A-F:]+)", demo.log.read_text())
    assert printed, demo.log.read_text()[-2000:]
    out = demo.run_ok(block.text)
    assert f"Fingerprint={printed.group(1)}" in out, out


def test_first_certificate_then_revoke_and_ocsp(demo: Demo) -> None:
    """certbot and lego exactly as written; then revoke and OCSP says revoked."""
    issue, revoke = _blocks_under("Your first certificate")
    listing = demo.run_ok(issue.text)
    for name in ("www.example.test", "api.example.test"):
        assert re.search(rf"\bvalid\b.*\btetra\b.*\bacme\b.*\b{re.escape(name)}", listing), listing
    assert (demo.root / "var/lego/certificates/api.example.test.crt").exists()
    assert "DEMO SETTING" in demo.log.read_text(), "the loopback-names warning must be in the server log"

    *steps, ocsp = revoke.commands
    out = demo.run_ok("\n".join(steps))
    assert "revoked issuing-ca/" in out and "(keyCompromise)" in out, out
    # The README promises the revocation reaches OCSP within a second: ask up to three times.
    for _ in range(3):
        answer = demo.run_ok(ocsp)
        if ": revoked" in answer:
            break
        time.sleep(1)
    assert "Response verify OK" in answer and ": revoked" in answer and "Reason: keyCompromise" in answer, answer


def test_scep_enrolment_and_renewal_with_sscep(demo: Demo) -> None:
    """SCEP-20 as a reader meets it: sscep against `make run`'s demo, enrolment with the static
    challenge, then a renewal signed by the first certificate; both chain to the root."""
    enrol, renew = _blocks_under("SCEP")
    out = demo.run_ok(enrol.text)
    assert "router.pem: OK" in out, out
    out = demo.run_ok(renew.text)
    assert "CN = router1.example.test" in out or "CN=router1.example.test" in out, out
    first = x509.load_pem_x509_certificate((demo.root / "router.pem").read_bytes())
    second = x509.load_pem_x509_certificate((demo.root / "router-new.pem").read_bytes())
    assert second.serial_number != first.serial_number
    assert second.public_key() != first.public_key()


def _synopsis_words(command: str) -> tuple[str, set[str], set[str]]:
    """A synopsis line's group, its --options, and its other lower-case words that name
    subcommands (the value after an option and UPPER-CASE placeholders are not words)."""
    tokens = shlex.split(command.replace("[", " ").replace("]", " "))
    assert tokens[0] == "tetra", command
    group, options, words = tokens[1], set(), set()
    after_option = False
    for token in tokens[2:]:
        if token.startswith("--"):
            options.update(token.split("/"))
            after_option = True
        elif token in ("|", "..."):
            after_option = False
        elif after_option or not token.islower():
            after_option = False
        else:
            words.add(token)
    return group, options, words


def _tree(parser: object) -> tuple[set[str], set[str]]:
    """Every option string and every subcommand name under one argparse parser."""
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    options: set[str] = set()
    names: set[str] = set()
    for action in parser._actions:
        options.update(s for s in action.option_strings if s.startswith("--"))
        if not action.option_strings and action.choices and not isinstance(action, argparse._SubParsersAction):
            names.update(str(c) for c in action.choices)  # a positional word with choices (`challenge list`)
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                names.add(name)
                child_options, child_names = _tree(child)
                options |= child_options
                names |= child_names
    return options, names


def test_command_line_synopsis_matches_the_parser() -> None:
    """Every command, subcommand and option the README's synopsis names exists, and every
    top-level command the parser has is in the synopsis."""
    import argparse

    from server.cli import build_parser

    (block,) = _blocks_under("The command line")
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    documented = set()
    for line in block.commands:
        group, options, words = _synopsis_words(line)
        assert group in sub.choices, f"README names `tetra {group}`, which does not exist"
        documented.add(group)
        have_options, have_names = _tree(sub.choices[group])
        assert options <= have_options, f"{line}: no such options {options - have_options}"
        assert words <= have_names, f"{line}: no such subcommands {words - have_names}"
    # An alias (`tetra certs` for `tetra inventory`) shares its command's parser, named after it.
    commands = {name for name, command in sub.choices.items() if command.prog.split()[-1] == name}
    assert documented == commands, f"commands missing from the README: {commands - documented}"


def test_development_commands_are_make_targets() -> None:
    """`make lint` and `make fuzz` are real targets (make -n runs nothing), and the pytest
    paths exist."""
    (block,) = _blocks_under("Development")
    for command in block.commands:
        words = command.split("#")[0].split()
        if words[0] == "make":
            dry = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True)
            assert dry.returncode == 0, f"{command}: {dry.stderr}"
        else:
            assert words[:2] == [".venv/bin/pytest", words[1]] and (REPO / words[1]).is_dir(), command


@pytest.mark.parametrize("heading", sorted(GUIDES))
def test_guide_blocks_are_the_guides_own(heading: str) -> None:
    """The README's HSM and PostgreSQL commands are copied word for word from their guides,
    whose tests run every block; a README edit that drifts from the guide fails here."""
    in_guide = {b.text for b in blocks(GUIDES[heading])}
    for block in _blocks_under(heading):
        assert block.text in in_guide, f"README line {block.line}: not a block of {GUIDES[heading].name}"
