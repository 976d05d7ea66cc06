"""A non-editable install, built from exactly what the container build receives: the wheel has
what `tetra init` and the install steps of docs/deployment.md need at run time (the profiles and
the deployment files, under <prefix>/share/tetra), and `tetra init` run from it works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.deploy.deploy_files import DEPLOY, REPO, copy_build_context


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding only the tetra-ca wheel (its dependencies come from this test run's
    environment through PYTHONPATH), built by pip from the .dockerignore'd context as the
    Containerfile's `pip install .` builds it."""
    base = tmp_path_factory.mktemp("wheel")
    context = copy_build_context(base / "context")
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-q", "-w", str(base / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (base / "dist").glob("tetra_ca-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    done = subprocess.run(
        [*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return venv


def _run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A program of the installed venv, seeing the installed packages and not this source tree."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TETRA_"))}
    env["PYTHONPATH"] = sysconfig.get_path("purelib")  # the dependencies, without the editable tree
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]], capture_output=True, text=True, cwd=cwd, env=env, timeout=180
    )


def test_wheel_installs_the_profiles_and_deployment_files(installed: Path, tmp_path: Path) -> None:
    """OPS-16: the code runs from the venv (not from this checkout), and <venv>/share/tetra holds
    conf/profiles and the four deployment files, byte for byte."""
    where = _run(installed, "python", "-c", "import server; print(server.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(installed) and not Path(where.stdout.strip()).is_relative_to(REPO)
    share = installed / "share" / "tetra"
    for source in sorted((REPO / "conf" / "profiles").iterdir()):
        assert (share / "profiles" / source.name).read_bytes() == source.read_bytes()
    for name in ("tetra.service", "tetra.sysusers.conf", "tetra.tmpfiles.conf", "tetra.toml"):
        assert (share / "deploy" / name).read_bytes() == (DEPLOY / name).read_bytes()


def test_tetra_init_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    """OPS-16: `tetra init` of the installed package finds its profiles and makes a CA that
    `tetra ca list` reads; without the installed profiles it stops with one line naming where
    it looked, before writing anything (it used to look only beside the source tree)."""
    made = _run(installed, "tetra", "init", "--dir", str(tmp_path / "ca"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "ca" / "profiles").iterdir()) == sorted(
        p.name for p in (REPO / "conf" / "profiles").iterdir()
    )
    listed = _run(installed, "tetra", "ca", "list", "--config", str(tmp_path / "ca" / "tetra.toml"), cwd=tmp_path)
    assert listed.returncode == 0 and "issuing-ca" in listed.stdout, listed.stderr

    hidden = installed / "share" / "tetra" / "profiles"
    shutil.move(hidden, tmp_path / "moved-profiles")
    try:
        refused = _run(installed, "tetra", "init", "--dir", str(tmp_path / "second"), cwd=tmp_path)
    finally:
        shutil.move(tmp_path / "moved-profiles", hidden)
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1, refused.stderr
    assert "cannot find Tetra's profiles directory" in refused.stderr and str(hidden) in refused.stderr
    assert not (tmp_path / "second").exists()
