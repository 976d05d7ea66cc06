"""conf/deploy/tetra.service, tetra.sysusers.conf and tetra.tmpfiles.conf, run through systemd's
own tools (systemd-analyze verify, systemd-sysusers and systemd-tmpfiles with --root), and the
production config they go with loaded and served from a temporary root (OPS-15)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import ssl
import stat
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509

from server.cli import build_parser
from server.cli.deployment import serve
from tests.deploy.deploy_files import (
    CONFIG_DIR,
    PRODUCTION_CONFIG,
    REPO,
    STATE_DIR,
    UNIT,
    install_users_and_directories,
    passwd_entry,
    production_config,
    service,
    unit_settings,
)
from tests.doc_blocks import blocks
from tests.doc_shell import ShellSession
from tests.tetra_process import TetraProcess, free_port, tetra_command

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_tools = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is missing: `make debian-packages` installs systemd"
)


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)


@needs_systemd_tools
def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """OPS-15: `systemd-analyze verify` accepts the unit without a single warning. verify exits 0
    even for an unknown key or a bad value and only prints them, so its output must be empty;
    a copy with a misspelt key and a bad value shows that this check catches both. Only the
    executable's path is changed, to a file that exists here (verify insists on it)."""
    program = tmp_path / "bin" / "tetra"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    text = UNIT.read_text().replace("/opt/tetra/bin/tetra", str(program))
    unit = tmp_path / "tetra.service"
    unit.write_text(text)
    done = _verify(unit)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")

    broken = tmp_path / "broken" / "tetra.service"
    broken.parent.mkdir()
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSystem=stric").replace("User=", "Usr="))
    complaints = _verify(broken).stderr
    assert "Unknown key 'Usr'" in complaints and "protect system" in complaints.lower()


def test_unit_runs_tetra_serve_as_its_own_user() -> None:
    """OPS-15: the service runs `tetra serve --config /etc/tetra/tetra.toml` (a command line the
    CLI's own parser accepts) as user and group tetra, the name tetra.sysusers.conf creates, with
    /var/lib/tetra as its StateDirectory; reload is SIGHUP to the main process (which re-reads the
    profiles, and in a multi-worker server is relayed to every worker: server/app.py);
    failures restart it."""
    program, *argv = shlex.split(service("ExecStart"))
    assert program == "/opt/tetra/bin/tetra"
    args = build_parser().parse_args(argv)
    assert args.func is serve and Path(args.config) == Path(CONFIG_DIR) / "tetra.toml"
    sysusers = (UNIT.parent / "tetra.sysusers.conf").read_text().splitlines()
    (user_line,) = [line.split() for line in sysusers if line.startswith("u ")]
    assert service("User") == service("Group") == user_line[1] == "tetra"
    assert service("StateDirectory") == "tetra" and user_line[-1] == STATE_DIR
    assert service("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert service("Restart") == "on-failure"
    assert service("Type") == "exec"  # started means exec'd: `systemctl start` reports a missing program


def test_unit_sandbox_leaves_tetra_what_it_needs() -> None:
    """OPS-15: the sandbox is on (ProtectSystem=strict, NoNewPrivileges, no capabilities, ...), and
    every path the production config names is readable under it: writes go under the
    StateDirectory only (ProtectSystem=strict makes the rest read-only), nothing is under a
    hidden tree (ProtectHome, PrivateTmp), and the PKCS#11 module path of the commented HSM
    signer is under /usr/lib, which strict leaves readable."""
    settings = unit_settings()["Service"]
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "RestrictSUIDSGID": "yes",
    }.items():
        assert settings[key] == [value], key
    assert "CapabilityBoundingSet" in settings and settings["CapabilityBoundingSet"] == []
    assert "ReadWritePaths" not in settings and "InaccessiblePaths" not in settings

    config = production_config(Path("/nonexistent-root"))  # only the paths matter here
    prefix = "/nonexistent-root"

    def original(path: Path) -> str:
        return str(path).removeprefix(prefix)

    written = [original(Path(config.database_url.removeprefix("sqlite:///")))]
    crl_dir = config.protocol_settings["crl"].publish_dir
    written.append(original(Path(crl_dir)))
    for path in written:
        assert path.startswith(STATE_DIR + "/"), f"{path}: not writable under ProtectSystem=strict"
    read = [config.profiles_dir, *config.roots, config.tls_certificate, config.tls_key]
    read += [issuer.certificate for issuer in config.issuers.values()]
    for path in [original(p) for p in read if p is not None]:
        assert path.startswith((CONFIG_DIR + "/", STATE_DIR + "/")), path
        assert not path.startswith(("/home", "/root", "/run/user", "/tmp", "/var/tmp")), path
    hsm_module = next(
        line.split("=", 1)[1].strip().strip('"')
        for line in (UNIT.parent / "tetra.toml").read_text().splitlines()
        if line.startswith("# module =")
    )
    assert hsm_module.startswith("/usr/lib/")


@needs_systemd_tools
def test_sysusers_and_tmpfiles_make_the_user_and_its_directories(tmp_path: Path) -> None:
    """OPS-15: systemd-sysusers creates the system user tetra (home /var/lib/tetra, no login
    shell); systemd-tmpfiles then makes /var/lib/tetra and its subdirectories owned by it and
    /etc/tetra root's but readable by the tetra group, and tightens secrets already there to
    0640 root:tetra."""
    secret = tmp_path / "etc" / "tetra" / "secrets" / "passphrase"
    secret.parent.mkdir(parents=True)
    secret.write_text("x\n")
    secret.chmod(0o644)
    install_users_and_directories(tmp_path)
    _, _, uid, gid, _, home, shell = passwd_entry(tmp_path, "tetra")
    assert (home, shell) == (STATE_DIR, "/usr/sbin/nologin") and int(uid) < 1000
    for sub in ("", "/ca", "/keys", "/crl"):
        info = (tmp_path / (STATE_DIR.lstrip("/") + sub)).stat()
        assert (info.st_uid, info.st_gid) == (int(uid), int(gid)), sub
    etc = (tmp_path / "etc" / "tetra").stat()
    assert (etc.st_uid, etc.st_gid, stat.S_IMODE(etc.st_mode)) == (0, int(gid), 0o750)
    info = secret.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, int(gid), 0o640)


def _follow_the_guide(root: Path, share: Path) -> Path:
    """Run docs/deployment.md's "The CA's files" block as root would, with /etc/tetra,
    /var/lib/tetra and /root/offline-ca moved under `root`, the venv's tetra replaced by this
    checkout's and the group tetra by the id systemd-sysusers gave it in `root`."""
    install_users_and_directories(root)
    _, _, uid, gid, *_ = passwd_entry(root, "tetra")
    shutil.copytree(REPO / "conf" / "profiles", share / "profiles")
    (share / "deploy").mkdir()
    (share / "deploy" / "tetra.toml").write_text(_moved(PRODUCTION_CONFIG.read_text(), root))
    (block,) = [b for b in blocks(REPO / "docs" / "deployment.md") if b.heading == "The CA's files"]
    script = block.text.replace("/opt/tetra/share/tetra", str(share))
    script = script.replace("/opt/tetra/bin/tetra", shlex.join(tetra_command()))
    script = _moved(script, root).replace("/root/offline-ca", f"{root}/root/offline-ca")
    script = script.replace("tetra:tetra", f"{uid}:{gid}")
    script = re.sub(r"(-g|chgrp -R) tetra\b", rf"\g<1> {gid}", script)
    ShellSession(root, dict(os.environ)).run_ok(script)
    return root / CONFIG_DIR.lstrip("/") / "tetra.toml"


def _moved(text: str, root: Path) -> str:
    return text.replace(CONFIG_DIR, f"{root}{CONFIG_DIR}").replace(STATE_DIR, f"{root}{STATE_DIR}")


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_mtime_ns, p.stat().st_size) for p in directory.rglob("*") if p.is_file()}


def _served_serial(port: int) -> int:
    pem = ssl.get_server_certificate(("127.0.0.1", port), timeout=10)
    return x509.load_pem_x509_certificate(pem.encode()).serial_number


def _wait_for_log(server: TetraProcess, text: str, count: int) -> None:
    deadline = time.monotonic() + 30
    while server.log_path.read_text().count(text) < count:
        assert time.monotonic() < deadline, server.log_tail()
        assert server.proc.poll() is None, server.log_tail()
        time.sleep(0.02)


@pytest.mark.slow
def test_production_config_serves_from_state_and_reloads_on_sighup(tmp_path: Path) -> None:
    """OPS-15: the CA docs/deployment.md sets up (its block run in a temporary root, after
    systemd-sysusers and systemd-tmpfiles) with conf/deploy/tetra.toml, listeners moved onto
    free loopback ports, serves: /readyz (database and signer) answers 200; the ExecReload
    signal (SIGHUP) makes every worker re-read the profiles and the HTTPS certificate, so a
    renewed one (the guide's `tetra issue` run again) is served without a restart; one sent
    while the workers still start is ignored (it used to kill the server); SIGTERM stops it
    cleanly; and it wrote nothing under /etc/tetra: all its state is under /var/lib/tetra, as
    ProtectSystem=strict demands."""
    http, https = free_port(), free_port()
    config = _follow_the_guide(tmp_path / "root", tmp_path / "share")
    tls = config.parent / "tls"
    env = {"TETRA_SERVER__HTTP": f"127.0.0.1:{http}", "TETRA_SERVER__HTTPS": f"127.0.0.1:{https}"}
    server = TetraProcess(config, env, tmp_path / "serve.log")
    try:
        _wait_for_log(server, "supervising 2 workers", 1)
        server.proc.send_signal(signal.SIGHUP)  # `systemctl reload` while the workers still start
        server.wait_ready(f"http://127.0.0.1:{http}/readyz")
        _wait_for_log(server, '"event": "server.serving"', 2)
        first = _served_serial(https)
        renewed = server.cli("issue", "--csr", str(tls / "server.csr"), "--profile", "tls-server")
        (tls / "server.pem").write_text(renewed)
        etc_before = _snapshot(config.parent)
        server.proc.send_signal(signal.SIGHUP)
        _wait_for_log(server, "profiles reloaded", 2)  # both workers
        _wait_for_log(server, "TLS certificate reloaded", 2)
        new = x509.load_pem_x509_certificate(renewed.encode()).serial_number
        assert new != first and {_served_serial(https) for _ in range(6)} == {new}
    finally:
        server.stop()
    assert server.proc.returncode == 0, server.log_tail()
    assert _snapshot(config.parent) == etc_before
    state = tmp_path / "root" / STATE_DIR.lstrip("/")
    assert (state / "tetra.db").stat().st_mtime_ns > 0 and os.access(state, os.W_OK)
