"""`tetra user` and `tetra token`, in-process on a demo CA, and the admin that `tetra init`
bootstraps (OPS-05, OPS-10): errors are one line with exit 2; a token is printed once, alone on
the last line; no listing shows a password, a hash or a token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from ca.operators.errors import TokenRefused
from ca.operators.roles import Permission, Role
from ca.operators.tables import api_tokens, users
from ca.service import CertificateAuthority
from ca.store.tables import audit_log
from server.cli import main
from server.wiring import build_ca, read_config

PASSWORD = "a long enough passphrase"


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def tetra(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    config = str(ca_dir / "tetra.toml")

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--config", config, "--operator", "ops-test"])
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def _on_ca(ca_dir: Path, work: Callable[[CertificateAuthority], Awaitable[None]]) -> None:
    """Run ``work`` on the CA of ``ca_dir`` as a command would, between `tetra` commands."""
    ca = await build_ca(read_config(ca_dir / "tetra.toml"), open_signers=False)
    try:
        await work(ca)
    finally:
        await ca.close()


def test_init_bootstraps_an_admin_with_a_working_token(ca_dir: Path) -> None:
    """`tetra init` (the template every test copies) wrote the admin's password and token
    (0600); the token authenticates as the administrator, the password logs in."""
    secrets_dir = ca_dir / "secrets"
    token = (secrets_dir / "api-token").read_text().strip()
    password = (secrets_dir / "admin-password").read_text().strip()
    for name in ("api-token", "admin-password"):
        assert (secrets_dir / name).stat().st_mode & 0o077 == 0

    async def check(ca: CertificateAuthority) -> None:
        principal = await ca.operators.tokens.authenticate(token)
        assert principal.user == "admin" and principal.role is Role.ADMINISTRATOR
        assert principal.permissions == frozenset(Permission) and principal.all_teams
        assert (await ca.operators.logins.login("admin", password, "127.0.0.1")).user == "admin"

    asyncio.run(_on_ca(ca_dir, check))


def test_user_and_token_commands(ca_dir: Path, tetra: Run) -> None:
    """OPS-05 and OPS-10 through the CLI: add, list, disable, passwd; create, list, revoke a
    token; every refusal one line with exit 2; no secret in any listing, table or audit row."""
    run = tetra
    password_file = ca_dir / "pw"
    password_file.write_text(PASSWORD + "\n")

    code, out, err = run(
        "user", "add", "alice", "--role", "requester", "--team", "web", "--password-file", str(password_file)
    )
    assert code == 0, err
    assert "alice added: requester (web)" in out
    code, out, err = run(
        "user", "add", "visitor", "--role", "guest", "--team", "web", "--guest-access", "read", "--expires", "7d"
    )
    assert code == 0, err

    for argv, fragment in [
        (("user", "add", "bob", "--role", "requester"), "at least one team"),
        (("user", "add", "bob", "--role", "guest", "--team", "web", "--guest-access", "read"), "needs an expiry"),
        (("user", "add", "bad name", "--role", "auditor"), "user name"),
        (("user", "add", "alice", "--role", "auditor"), "already exists"),
        (("user", "add", "bob", "--role", "auditor", "--expires", "soon"), "--expires"),
        (("user", "add", "bob", "--role", "auditor", "--password-file", str(ca_dir / "none")), "--password-file"),
        (("user", "disable", "nobody"), "no user 'nobody'"),
        (("token", "create", "alice", "--scope", "everything"), "unknown scope"),
        (("token", "create", "alice", "--scope", "users.manage"), "does not hold these permissions"),
        (("token", "create", "nobody"), "no user"),
        (("token", "revoke", "99999"), "no API token 99999"),
        (("token", "list", "nobody"), "no user"),
    ]:
        code, out, err = run(*argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("tetra: error:"), (argv, err)
        assert fragment in lines[0], (argv, lines[0])

    code, out, err = run("token", "create", "alice", "--label", "ci", "--scope", "read", "--expires", "30d")
    assert code == 0, err
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("tetra_") and " " not in secret
    assert "shown once" in err
    code, out, _ = run("token", "list", "alice")
    assert code == 0 and "ci" in out and secret not in out and "certificates.read" in out
    token_id = out.splitlines()[1].split()[0]

    code, out, _ = run("user", "list", "--format", "json")
    listed = {user["name"]: user for user in json.loads(out)}
    assert listed["alice"]["has_password"] and not listed["visitor"]["has_password"]
    assert listed["alice"]["teams"] == ["web"] and listed["visitor"]["guest_access"] == "read"
    assert "argon2" not in out and PASSWORD not in out
    code, out, _ = run("user", "list")
    assert code == 0 and out.splitlines()[0].split()[0] == "NAME" and "argon2" not in out

    (ca_dir / "pw2").write_text(PASSWORD + " two\n")
    assert run("user", "passwd", "alice", "--password-file", str(ca_dir / "pw2"))[0] == 0
    assert run("user", "disable", "alice")[0] == 0

    async def check(ca: CertificateAuthority) -> None:
        with pytest.raises(TokenRefused, match="user-disabled"):
            await ca.operators.tokens.authenticate(secret)
        await ca.operators.users.enable("alice", actor="test")
        principal = await ca.operators.tokens.authenticate(secret)
        assert principal.permissions == {
            Permission.CERTIFICATES_READ,
            Permission.REQUESTS_READ,
            Permission.PROFILES_READ,
        }
        assert (await ca.operators.logins.login("alice", PASSWORD + " two", "192.0.2.7")).user == "alice"
        tables = await ca.db.read(
            lambda conn: [
                str(tuple(row)) for table in (users, api_tokens, audit_log) for row in conn.execute(select(table))
            ]
        )
        body = secret.removeprefix("tetra_")
        assert not [row for row in tables if body in row or PASSWORD in row]
        actors = await ca.db.read(
            lambda conn: {row.actor for row in conn.execute(select(audit_log).where(audit_log.c.action.like("user.%")))}
        )
        assert "cli:ops-test" in actors

    asyncio.run(_on_ca(ca_dir, check))
    assert run("token", "revoke", token_id)[0] == 0
    code, out, _ = run("token", "list")
    row = next(line for line in out.splitlines()[1:] if line.split()[0] == token_id)
    assert code == 0 and "alice" in row and secret not in out

    async def revoked(ca: CertificateAuthority) -> None:
        with pytest.raises(TokenRefused, match="revoked"):
            await ca.operators.tokens.authenticate(secret)

    asyncio.run(_on_ca(ca_dir, revoked))
    assert main(["audit", "verify", "--config", str(ca_dir / "tetra.toml")]) == 0  # OPS-07: the chain is whole
