"""The `tetra` command as an operator runs it: one-line errors, no tracebacks. `init`, `serve` and
$TETRA_CONFIG (read at import) run as real processes (`tetra`); the other one-shot commands run
server.cli.main in this process (tests/cli_here.py), a process start saved on each."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.cli_here import tetra_here
from tests.helpers import enroll, make_csr


def tetra(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        input=stdin.decode() if stdin else None,
    )


def assert_clean_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("tetra: error:")]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _csr_file(tmp_path: Path, names: list[str], **kw: object) -> Path:
    csr, _ = make_csr(names, **kw)  # type: ignore[arg-type]
    path = tmp_path / "req.csr"
    path.write_bytes(csr.public_bytes(Encoding.PEM))
    return path


def test_init_prints_fingerprint_and_refuses_twice(tmp_path: Path) -> None:
    result = tetra("init", "--dir", str(tmp_path / "var"))
    assert result.returncode == 0, result.stderr
    assert "root SHA-256 fingerprint:" in result.stdout
    assert "ACME directory:           https://127.0.0.1:8443/acme/directory" in result.stdout
    assert f"admin's API token:        {tmp_path / 'var' / 'secrets' / 'api-token'}" in result.stdout
    assert f"admin's password:         {tmp_path / 'var' / 'secrets' / 'admin-password'}" in result.stdout
    check = "curl -s http://127.0.0.1:8080/roots.pem | openssl x509 -noout -fingerprint -sha256"
    assert check in result.stdout
    for name in ("tetra.toml", "tetra.db", "ca/root.pem", "ca/issuing-ca.pem", "tls/server.pem", "ra/ra.pem"):
        assert (tmp_path / "var" / name).exists(), name
    for secret in ("passphrase", "api-token", "admin-password"):
        assert (tmp_path / "var" / "secrets" / secret).stat().st_mode & 0o077 == 0  # owner-only
    key_pem = (tmp_path / "var" / "keys" / "issuing-ca.key").read_text()
    assert "ENCRYPTED PRIVATE KEY" in key_pem
    assert_clean_error(tetra("init", "--dir", str(tmp_path / "var")), "already")
    from ca.lint import lint_certificate

    tls = x509.load_pem_x509_certificates((tmp_path / "var" / "tls" / "server.pem").read_bytes())[0]
    codes = {f.code for f in lint_certificate(tls.public_bytes(Encoding.DER), profile="pkix")}
    assert codes <= {"pkix.invalid_domain_name_syntax"}  # only "localhost" itself
    for name in ("ra/ra.pem", "ca/root.pem", "ca/issuing-ca.pem"):
        cert = x509.load_pem_x509_certificate((tmp_path / "var" / name).read_bytes())
        assert lint_certificate(cert.public_bytes(Encoding.DER), profile="pkix") == [], name
    shown = tetra("ca", "show", "--config", str(tmp_path / "var" / "tetra.toml"))
    assert shown.returncode == 0 and "root sha256:" in shown.stdout
    fp = result.stdout.split("fingerprint:")[1].split()[0]
    assert fp in shown.stdout
    # The printed check, run on the file that URL serves (the demo's roots.pem), shows the same fingerprint.
    roots = (tmp_path / "var" / "ca" / "root.pem").read_bytes()
    openssl = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=roots, capture_output=True, check=True
    )
    assert openssl.stdout.decode().strip().split("=", 1)[1] == fp


def test_issue_dry_run_issue_list_revoke_audit(ca_dir: Path, tmp_path: Path) -> None:
    cfg = str(ca_dir / "tetra.toml")
    csr = _csr_file(tmp_path, ["shop.example.com"])
    dry = tetra_here("issue", "--config", cfg, "--csr", str(csr), "--profile", "tls-server", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would issue" in dry.stdout and "dns:shop.example.com" in dry.stdout
    listed = json.loads(
        tetra_here("certs", "list", "--config", cfg, "--format", "json", "--profile", "tls-server").stdout
    )
    assert listed == []  # dry run signs and stores nothing

    out = tmp_path / "cert.pem"
    issued = tetra_here(
        "issue",
        "--config",
        cfg,
        "--csr",
        str(csr),
        "--profile",
        "tls-server",
        "--out",
        str(out),
        "--owner",
        "alice",
        "--team",
        "web",
    )
    assert issued.returncode == 0, issued.stderr
    certs = x509.load_pem_x509_certificates(out.read_bytes())
    assert len(certs) == 2  # leaf + issuing CA
    serial = format(certs[0].serial_number, "x")

    listed = json.loads(
        tetra_here("certs", "list", "--config", cfg, "--format", "json", "--profile", "tls-server").stdout
    )
    assert [c["serial"] for c in listed] == [serial]
    assert listed[0]["owner"] == "alice" and listed[0]["status"] == "valid" and listed[0]["source"] == "tetra"
    expiring = json.loads(tetra_here("certs", "list", "--config", cfg, "--format", "json", "--expiring", "10").stdout)
    assert serial not in [c["serial"] for c in expiring]
    table = tetra_here("certs", "list", "--config", cfg, "--expiring", "100")
    assert serial in table.stdout

    revoked = tetra_here("revoke", serial, "--config", cfg, "--reason", "keyCompromise")
    assert revoked.returncode == 0, revoked.stderr
    assert "keyCompromise" in revoked.stdout
    assert_clean_error(tetra_here("revoke", serial, "--config", cfg, "--reason", "superseded"), "already revoked")
    assert_clean_error(tetra_here("revoke", "zz", "--config", cfg), "not hexadecimal")
    assert_clean_error(tetra_here("revoke", serial, "--config", cfg, "--reason", "certificateHold"), "certificateHold")
    status = json.loads(tetra_here("certs", "list", "--config", cfg, "--format", "json", "--status", "revoked").stdout)
    assert [c["serial"] for c in status] == [serial]

    verified = tetra_here("audit", "verify", "--config", cfg)
    assert verified.returncode == 0 and "intact" in verified.stdout


def test_audit_verify_detects_tampering(ca_dir: Path, tmp_path: Path) -> None:
    """CORE-13: editing or deleting an audit row is detected."""
    cfg = str(ca_dir / "tetra.toml")
    csr = _csr_file(tmp_path, ["audit.example.com"])
    assert (
        tetra_here(
            "issue", "--config", cfg, "--csr", str(csr), "--profile", "tls-server", "--out", str(tmp_path / "c.pem")
        ).returncode
        == 0
    )
    db = sqlite3.connect(ca_dir / "tetra.db")
    db.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    db.commit()
    result = tetra_here("audit", "verify", "--config", cfg)
    assert result.returncode == 1 and "event 2: content does not match" in result.stderr
    db.execute("UPDATE audit_log SET actor = 'tetra-init' WHERE seq = 2")
    last = db.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
    db.execute("DELETE FROM audit_log WHERE seq = ?", (last,))
    db.commit()
    result = tetra_here("audit", "verify", "--config", cfg)
    assert result.returncode == 1 and "rows deleted" in result.stderr


@pytest.mark.parametrize(
    ("mutate", "fragments"),
    [
        (lambda d: (d / "secrets" / "passphrase").write_text("wrong\n"), ("issuing-ca.key", "wrong passphrase")),
        (
            lambda d: (d / "tetra.toml").write_text(
                (d / "tetra.toml").read_text().replace("[database]\n", "[database]\nbogus = 1\n")
            ),
            ("database.bogus: unknown key",),
        ),
        (
            lambda d: (d / "tetra.toml").write_text(
                (d / "tetra.toml").read_text().replace('mode = "auto"', "mode = 5")
            ),
            ("database.mode: expected string, got integer",),
        ),
        (lambda d: (d / "ca" / "issuing-ca.pem").write_text("garbage"), ("issuing-ca.pem", "not a PEM certificate")),
    ],
    ids=["wrong-passphrase", "unknown-key", "wrong-type", "bad-ca-file"],
)
def test_config_and_key_errors_are_one_line(
    ca_dir: Path, tmp_path: Path, mutate: object, fragments: tuple[str, ...]
) -> None:
    mutate(ca_dir)  # type: ignore[operator]
    csr = _csr_file(tmp_path, ["x.example.com"])
    assert_clean_error(
        tetra_here("issue", "--config", str(ca_dir / "tetra.toml"), "--csr", str(csr), "--profile", "tls-server"),
        *fragments,
    )


def test_unreachable_database_is_one_line(ca_dir: Path, tmp_path: Path) -> None:
    csr = _csr_file(tmp_path, ["x.example.com"])
    result = tetra_here(
        "issue",
        "--config",
        str(ca_dir / "tetra.toml"),
        "--csr",
        str(csr),
        "--profile",
        "tls-server",
        env={"TETRA_DATABASE__URL": "postgresql://postgres@127.0.0.1:1/none", "TETRA_DATABASE__TIMEOUT_SECONDS": "5"},
    )
    assert_clean_error(result, "database unavailable")


def test_bad_csrs_are_one_line(ca_dir: Path, tmp_path: Path) -> None:
    cfg = str(ca_dir / "tetra.toml")
    garbage = tmp_path / "garbage.csr"
    garbage.write_bytes(b"this is not a CSR")
    assert_clean_error(
        tetra_here("issue", "--config", cfg, "--csr", str(garbage), "--profile", "tls-server"), "not a PKCS#10 CSR"
    )
    assert_clean_error(
        tetra_here("issue", "--config", cfg, "--csr", str(tmp_path / "missing.csr"), "--profile", "tls-server"),
        "missing.csr",
    )
    ip_csr = _csr_file(tmp_path, ["ip:192.0.2.1", "a.example.com"])
    assert_clean_error(
        tetra_here("issue", "--config", cfg, "--csr", str(ip_csr), "--profile", "email"),
        "profile email: SAN type ip not allowed",
    )
    listed = json.loads(tetra_here("certs", "list", "--config", cfg, "--format", "json", "--protocol", "cli").stdout)
    assert all(c["profile"] in ("tetra-service-tls", "tetra-ra") for c in listed)  # nothing new stored


def test_certs_list_pages_and_says_when_the_result_is_cut(ca_dir: Path) -> None:
    """`certs list` used to stop at 1,000 rows without a word: a cut page now says so on stderr
    (JSON on stdout stays a list) and names the --after that shows the next page; following
    those notices lists every certificate exactly once, in order; the last page has no notice."""
    from ca.csr import enrollment_from_csr
    from ca.enrollment import AuthMethod, Requester
    from server.wiring import build_ca, read_config

    async def issue_some(count: int) -> None:
        authority = await build_ca(read_config(ca_dir / "tetra.toml", environ={}))
        try:
            for i in range(count):
                csr, _ = make_csr([f"page{i}.example.com"])
                request = enrollment_from_csr(
                    csr, protocol="cli", profile_name="tls-server", requester=Requester("cli:test", AuthMethod.OPERATOR)
                )
                await enroll(authority, request)
        finally:
            await authority.close()

    asyncio.run(issue_some(5))
    cfg = str(ca_dir / "tetra.toml")
    everything = tetra_here("certs", "list", "--config", cfg, "--format", "json")
    assert everything.returncode == 0 and everything.stderr == ""
    all_ids = [c["id"] for c in json.loads(everything.stdout)]
    assert len(all_ids) >= 5 and all_ids == sorted(all_ids)

    seen: list[int] = []
    paging: list[str] = []
    while True:
        page = tetra_here("certs", "list", "--config", cfg, "--format", "json", "--limit", "2", *paging)
        assert page.returncode == 0, page.stderr
        rows = json.loads(page.stdout)
        seen += [c["id"] for c in rows]
        if not page.stderr:
            break
        assert len(rows) == 2
        assert "more match" in page.stderr and f"--after {rows[-1]['id']}" in page.stderr
        paging = ["--after", str(rows[-1]["id"])]
    assert seen == all_ids

    table = tetra_here("certs", "list", "--config", cfg, "--profile", "tls-server", "--limit", "3")
    assert table.returncode == 0
    assert len(table.stdout.splitlines()) == 1 + 3  # header and one page
    assert "listed the first 3 matching certificates" in table.stderr
    assert_clean_error(tetra_here("certs", "list", "--config", cfg, "--limit", "0"), "--limit")


def test_requests_approve_and_reject(ca_dir: Path, tmp_path: Path) -> None:
    from ca.csr import enrollment_from_csr
    from ca.enrollment import AuthMethod, Pending, Requester
    from server.wiring import build_ca, read_config

    async def make_pending() -> list[int]:
        authority = await build_ca(read_config(ca_dir / "tetra.toml", environ={}))
        try:
            ids = []
            for name in ("Signer A", "Signer B"):
                csr, _ = make_csr([], cn=name)
                req = enrollment_from_csr(
                    csr,
                    protocol="est",
                    profile_name="code-signing",
                    requester=Requester("est:bob", AuthMethod.PASSWORD),
                )
                outcome = await enroll(authority, req)
                assert isinstance(outcome, Pending)
                ids.append(outcome.request_id)
            return ids
        finally:
            await authority.close()

    first, second = asyncio.run(make_pending())
    cfg = str(ca_dir / "tetra.toml")
    listing = tetra_here("requests", "list", "--config", cfg, "--status", "pending")
    assert str(first) in listing.stdout and str(second) in listing.stdout
    approved = tetra_here("requests", "approve", str(first), "--config", cfg)
    assert approved.returncode == 0 and "issued serial" in approved.stdout
    rejected = tetra_here("requests", "reject", str(second), "--config", cfg, "--note", "unknown signer")
    assert rejected.returncode == 0
    assert_clean_error(tetra_here("requests", "approve", str(second), "--config", cfg), "already rejected")
    assert_clean_error(tetra_here("requests", "approve", "999", "--config", cfg), "no enrollment request 999")


def test_init_intermediate_from_offline_root(tmp_path: Path, ca_dir: Path) -> None:
    """A second issuing CA signed by a root whose key is not in the server's config."""
    env = {"ROOT_PASS": "root-secret", "NEW_PASS": "issuer-secret"}
    root = tetra_here(
        "ca",
        "init-root",
        "--name",
        "offline-root",
        "--out-dir",
        str(tmp_path / "offline"),
        "--key-type",
        "ec-p384",
        "--passphrase-env",
        "ROOT_PASS",
        env=env,
    )
    assert root.returncode == 0, root.stderr
    inter = tetra_here(
        "ca",
        "init-intermediate",
        "--name",
        "second-ca",
        "--out-dir",
        str(tmp_path / "second"),
        "--parent-cert",
        str(tmp_path / "offline" / "offline-root.pem"),
        "--parent-key",
        str(tmp_path / "offline" / "offline-root.key"),
        "--parent-passphrase-env",
        "ROOT_PASS",
        "--passphrase-env",
        "NEW_PASS",
        "--key-type",
        "rsa-3072",
        "--permitted-dns",
        "example.com",
        "--add-to-config",
        str(ca_dir / "tetra.toml"),
        env=env,
    )
    assert inter.returncode == 0, inter.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "second" / "second-ca.pem").read_bytes())
    nc = cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert nc.critical and [n.value for n in nc.value.permitted_subtrees or []] == ["example.com"]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 0
    # The server config now lists it; the offline root must also be trusted there to build the chain.
    cfg = ca_dir / "tetra.toml"
    cfg.write_text(
        cfg.read_text().replace(
            'roots = ["ca/root.pem"]', f'roots = ["ca/root.pem", "{tmp_path / "offline" / "offline-root.pem"}"]'
        )
    )
    listed = tetra_here("ca", "list", "--config", str(cfg), env=env)
    assert listed.returncode == 0, listed.stderr
    assert "second-ca" in listed.stdout and "issuing-ca (default)" in listed.stdout
    wrong = tetra_here(
        "ca",
        "init-intermediate",
        "--name",
        "third",
        "--out-dir",
        str(tmp_path / "third"),
        "--parent-cert",
        str(tmp_path / "offline" / "offline-root.pem"),
        "--parent-key",
        str(tmp_path / "offline" / "offline-root.key"),
        "--parent-passphrase-env",
        "NEW_PASS",
        "--passphrase-env",
        "NEW_PASS",
        env=env,
    )
    assert_clean_error(wrong, "offline-root.key", "wrong passphrase")


def test_cli_issued_certificate_points_at_its_crl_partition_and_delta(ca_dir: Path, tmp_path: Path) -> None:
    """CRL-06 from the CLI: `tetra issue` bakes the same partition CRL DP and Freshest CRL into a
    certificate as the server would, so its revocation is listed where the certificate says."""
    env = {"TETRA_CRL__PARTITIONS": "4", "TETRA_CRL__DELTA": "true"}
    cfg = str(ca_dir / "tetra.toml")
    out = tmp_path / "cert.pem"
    csr = _csr_file(tmp_path, ["part.example.com"])
    issued = tetra_here(
        "issue", "--config", cfg, "--csr", str(csr), "--profile", "tls-server", "--out", str(out), env=env
    )
    assert issued.returncode == 0, issued.stderr
    cert = x509.load_pem_x509_certificates(out.read_bytes())[0]
    part = cert.serial_number % 4
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    freshest = cert.extensions.get_extension_for_class(x509.FreshestCRL).value
    assert str(cdp[0].full_name[0].value).endswith(f"/{part}.crl")
    assert str(freshest[0].full_name[0].value).endswith(f"/{part}-delta.crl")


def test_config_before_or_after_the_subcommand(ca_dir: Path, tmp_path: Path) -> None:
    """`tetra --config FILE certs list` and `tetra certs list --config FILE` (like `git -C`); given
    in both places, the one after the subcommand wins; neither: $TETRA_CONFIG."""
    cfg, missing = str(ca_dir / "tetra.toml"), str(tmp_path / "missing.toml")
    before = tetra_here("--config", cfg, "certs", "list", "--format", "json")
    after = tetra_here("certs", "list", "--format", "json", "--config", cfg)
    assert before.returncode == 0 and after.returncode == 0, before.stderr + after.stderr
    assert json.loads(before.stdout) == json.loads(after.stdout) != []
    assert tetra_here("--config", missing, "certs", "list", "--config", cfg).returncode == 0
    assert_clean_error(
        tetra_here("--config", cfg, "certs", "list", "--config", missing), "missing.toml", "config file not found"
    )
    assert tetra_here("--config", cfg, "acme", "renew-now", "--profile", "tls-server").returncode == 0
    assert tetra("certs", "list", env={"TETRA_CONFIG": cfg}).returncode == 0
    assert_clean_error(tetra("certs", "list", env={"TETRA_CONFIG": missing}), "missing.toml")
    refused = tetra_here("--config", cfg, "init", "--dir", str(tmp_path / "new"))
    assert refused.returncode == 2 and "this command reads no config file" in refused.stderr
    assert not (tmp_path / "new").exists()


def test_version_and_an_empty_request_list_say_so(ca_dir: Path) -> None:
    """`tetra --version` names the installed version; `requests list` with nothing to list says so
    on stderr (stdout stays empty for scripts) and exits 0."""
    from importlib import metadata

    version = tetra_here("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"tetra {metadata.version('tetra-ca')}"
    config = str(ca_dir / "tetra.toml")
    empty = tetra_here("requests", "list", "--config", config)
    assert empty.returncode == 0 and empty.stdout == "" and empty.stderr.strip() == "no requests", empty
    pending = tetra_here("requests", "list", "--status", "pending", "--config", config)
    assert pending.returncode == 0 and pending.stderr.strip() == "no pending requests", pending


@pytest.mark.parametrize("listener", ["HTTP", "HTTPS"])
def test_a_port_in_use_is_one_line(ca_dir: Path, listener: str) -> None:
    """`tetra serve` on a port another process holds: one line naming the address and the
    listener, a configuration error's exit status, no traceback."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {f"TETRA_SERVER__{listener}": f"127.0.0.1:{port}", "TETRA_SERVER__PROTOCOLS": '["crl"]'}
        result = tetra("serve", "--config", str(ca_dir / "tetra.toml"), env=env)
    assert_clean_error(result, f"cannot listen on 127.0.0.1:{port} ({listener.lower()}): address already in use")


def test_certs_list_columns_fit_long_values(ca_dir: Path) -> None:
    """The table's columns are as wide as their longest cell: with `tetra init`'s own certificates
    (32-digit serials, wider than the header) every row's status, source, owner and names start
    where their headers do."""
    table = tetra_here("certs", "list", "--config", str(ca_dir / "tetra.toml"))
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert any("localhost" in row for row in rows)
    for column in ("status", "source", "profile", "owner", "names"):
        start = header.index(column)
        for row in rows:
            assert row[start - 1] == " " and row[start] != " ", (column, row)
