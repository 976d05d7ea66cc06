"""What the tests of conf/deploy share: where the files are, the systemd unit read as systemd
reads it (repeatable keys), and the production config loaded from a temporary root."""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
from pathlib import Path

from server.config import ServerConfig
from server.wiring import read_config

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "conf" / "deploy"
PRODUCTION_CONFIG = DEPLOY / "tetra.toml"
UNIT = DEPLOY / "tetra.service"
CONFIG_DIR = "/etc/tetra"  # read-only to the service
STATE_DIR = "/var/lib/tetra"  # the unit's StateDirectory=, the image's VOLUME


def unit_settings(path: Path = UNIT) -> dict[str, dict[str, list[str]]]:
    """[Section] -> key -> every value it is given, in order (systemd.syntax(7): comments start
    with # or ;, a key may repeat, an empty assignment resets the list)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        values = current.setdefault(key.strip(), [])
        if value.strip():
            values.append(value.strip())
        else:
            values.clear()
    return sections


def service(key: str) -> str:
    """The one value of a [Service] key."""
    (value,) = unit_settings()["Service"][key]
    return value


def production_config(root: Path) -> ServerConfig:
    """conf/deploy/tetra.toml with /etc/tetra and /var/lib/tetra moved under `root`, loaded by
    the server's own parser (every protocol's section included)."""
    text = PRODUCTION_CONFIG.read_text()
    for directory in (CONFIG_DIR, STATE_DIR):
        text = text.replace(f'"{directory}/', f'"{root}{directory}/').replace(
            f":///{directory}/", f":///{root}{directory}/"
        )
    path = root / CONFIG_DIR.lstrip("/") / "tetra.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return read_config(path, environ={})


def install_users_and_directories(root: Path) -> None:
    """systemd-sysusers and systemd-tmpfiles on the shipped files, as the install steps run them,
    but inside `root` (their --root option) so the test machine's own users are left alone."""
    for tool, subdir, source in (
        ("systemd-sysusers", "usr/lib/sysusers.d", DEPLOY / "tetra.sysusers.conf"),
        ("systemd-tmpfiles", "usr/lib/tmpfiles.d", DEPLOY / "tetra.tmpfiles.conf"),
    ):
        (root / subdir).mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / subdir / "tetra.conf")
        (root / "etc").mkdir(exist_ok=True)
        extra = ["--create"] if tool == "systemd-tmpfiles" else []
        done = subprocess.run([tool, f"--root={root}", *extra, "tetra.conf"], capture_output=True, text=True)
        assert done.returncode == 0, f"{tool}: {done.stderr}"


def passwd_entry(root: Path, name: str) -> list[str]:
    for line in (root / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    raise AssertionError(f"no user {name!r} in {root}/etc/passwd")


CONTAINERFILE = DEPLOY / "Containerfile"
DOCKERIGNORE = REPO / ".dockerignore"  # the build context is the repository root


def _ignore_patterns() -> list[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def in_build_context(relative: str, patterns: list[str] | None = None) -> bool:
    """Whether the container build sees `relative` (a path from the repository root): the
    .dockerignore rules in order, the last that matches the path or one of its parent
    directories deciding, a leading ! admitting again (Docker's and Podman's reading)."""
    keep = True
    parts = relative.split("/")
    for pattern in _ignore_patterns() if patterns is None else patterns:
        admit = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        if any(fnmatch.fnmatchcase("/".join(parts[:depth]), glob) for depth in range(1, len(parts) + 1)):
            keep = admit
    return keep


def copy_build_context(target: Path) -> Path:
    """The files of this working tree that the container build would receive, copied to `target`."""
    patterns = _ignore_patterns()
    for directory, subdirs, files in os.walk(REPO):
        subdirs[:] = [d for d in subdirs if d not in (".git", ".venv")]
        for name in files:
            source = Path(directory) / name
            relative = source.relative_to(REPO).as_posix()
            if in_build_context(relative, patterns):
                (target / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / relative)
    return target
