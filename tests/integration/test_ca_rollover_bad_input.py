"""`tetra ca rollover` and `tetra ca activate` refusing bad input, on SQLite and PostgreSQL: one
line on stderr, exit 2 (operator error) or 1 (the registry's state), no traceback, and nothing
made: no key file, no certificate file, no registry row or activation time, no audit event."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.authorities.model import Authority, KeyLocation, Kind
from ca.authorities.rollover import profile_of
from ca.authorities.store import AuthorityStore
from ca.hierarchy import create_intermediate
from ca.keys import generate_private_key
from ca.signers.software import load_encrypted_key
from ca.store.db import Database
from ca.store.repositories import AuditRepository
from server.wiring import build_ca, open_database, read_config
from tests.integration.rollover_support import parent_key, tetra

T = TypeVar("T")


@pytest.fixture(autouse=True)
def environment(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TETRA_DATABASE__URL", db_url)


def _on_store(ca_dir: Path, work: Callable[[Database], Awaitable[T]]) -> T:
    """``work`` on the test's store, with the config's CAs registered (as any command does first)."""

    async def run() -> T:
        ca = await build_ca(read_config(ca_dir / "tetra.toml"), open_signers=False)
        await ca.close()
        db = open_database(read_config(ca_dir / "tetra.toml"))
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(run())


def _snapshot(ca_dir: Path) -> tuple[list[Authority], int, list[str]]:
    """What a refusal must leave as it was: the registry, the audit log's length, the files."""

    async def read(db: Database) -> tuple[list[Authority], int]:
        return await AuthorityStore(db).all(), (await AuditRepository(db).verify()).events

    records, events = _on_store(ca_dir, read)
    return records, events, sorted(str(p.relative_to(ca_dir)) for p in ca_dir.rglob("*") if "tetra.db" not in p.name)


def _refused(ca_dir: Path, code: int, words: str, *args: str) -> None:
    before = _snapshot(ca_dir)
    got, out, err = tetra(ca_dir, *args)
    assert (got, out) == (code, ""), (got, out, err)
    assert err.startswith("tetra: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert words in err, err
    assert _snapshot(ca_dir) == before


def _add(ca_dir: Path, authority: Authority) -> None:
    _on_store(ca_dir, lambda db: AuthorityStore(db).add(authority, None))


def _future_generation(ca_dir: Path, name: str, generation: int, days: int) -> Authority:
    """A certified generation whose certificate begins ``days`` from now (made by hand)."""
    root = x509.load_pem_x509_certificate((ca_dir / "ca/root.pem").read_bytes())
    root_key = load_encrypted_key(ca_dir / "keys/root.key", (ca_dir / "secrets/passphrase").read_bytes().strip())
    current = x509.load_pem_x509_certificate((ca_dir / "ca/issuing-ca.pem").read_bytes())
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    public = generate_private_key("ec-p256").public_key()
    cert = create_intermediate(profile_of(current, 30), public, root, root_key, start)
    now = dt.datetime.now(dt.UTC)
    key = KeyLocation("software", key_file=f"keys/{name}.key", passphrase_file="secrets/passphrase")
    return Authority(
        name, "issuing-ca", generation, Kind.ISSUING, "root", cert.public_bytes(Encoding.DER), key, None, now
    )


def test_activate_refusals(ca_dir: Path) -> None:
    """An unknown, pending, revoked or already active generation; a certificate that has not begun
    or has expired by the activation time; a time in the past or without its zone."""
    _add(ca_dir, _future_generation(ca_dir, "issuing-ca.2", 2, days=2))
    pending_key = KeyLocation("software", key_file="keys/issuing-ca.3.key", passphrase_file="secrets/passphrase")
    now = dt.datetime.now(dt.UTC)
    _add(ca_dir, Authority("issuing-ca.3", "issuing-ca", 3, Kind.ISSUING, None, None, pending_key, None, now))
    later = (now + dt.timedelta(days=1)).isoformat()
    _refused(ca_dir, 2, "no CA generation named 'nope'", "ca", "activate", "nope")
    _refused(ca_dir, 2, "issuing-ca.3 is pending", "ca", "activate", "issuing-ca.3")
    _refused(ca_dir, 2, "has not begun", "ca", "activate", "issuing-ca.2")
    _refused(ca_dir, 2, "has not begun", "ca", "activate", "issuing-ca.2", "--at", later)
    _refused(ca_dir, 2, "has expired by", "ca", "activate", "issuing-ca.2", "--at", "2099-01-01T00:00:00Z")
    _refused(ca_dir, 2, "already the active generation", "ca", "activate", "issuing-ca")
    _refused(ca_dir, 2, "is in the past", "ca", "activate", "issuing-ca.2", "--at", "2020-01-01T00:00:00Z")
    _refused(ca_dir, 2, "say the time zone", "ca", "activate", "issuing-ca.2", "--at", "2027-01-01T00:00:00")
    _refused(ca_dir, 2, "not an ISO 8601 time", "ca", "activate", "issuing-ca.2", "--at", "tomorrow")
    _on_store(ca_dir, lambda db: AuthorityStore(db).mark_revoked("issuing-ca.2", "superseded", now, "test"))
    in_range = (now + dt.timedelta(days=3)).isoformat()
    _refused(ca_dir, 2, "issuing-ca.2 is revoked", "ca", "activate", "issuing-ca.2", "--at", in_range)


def test_rollover_refusals(ca_dir: Path, tmp_path: Path) -> None:
    """CAL-05 for a rollover: a wrong parent key (another CA's, or a wrong passphrase), or none, is
    refused before any key is made; so are --same-key with --new-key, neither, a root with
    --same-key, an unknown CA, a second rollover while one is staged, and a CA whose parent is
    not one of our roots (re-certified through `ca csr`/`ca import` instead)."""
    issuing_key = parent_key(ca_dir, "keys/issuing-ca.key")
    wrong_pass = tmp_path / "wrong"
    wrong_pass.write_text("not the passphrase\n")
    bad_pass = ["--parent-key", str(ca_dir / "keys/root.key"), "--parent-passphrase-file", str(wrong_pass)]
    rollover = ("ca", "rollover", "issuing-ca")
    _refused(ca_dir, 2, "is not the key of CN=Tetra Demo Root CA,O=Tetra", *rollover, "--new-key", *issuing_key)
    _refused(ca_dir, 2, "wrong passphrase", *rollover, "--new-key", *bad_pass)
    _refused(ca_dir, 2, "exactly one of --parent-key", *rollover, "--new-key")
    _refused(ca_dir, 2, "exactly one of --same-key and --new-key", *rollover, "--same-key", "--new-key")
    _refused(ca_dir, 2, "exactly one of --same-key and --new-key", *rollover, *parent_key(ca_dir))
    out = tmp_path / "root2"
    root = ("ca", "rollover", "root", "--out-dir", str(out), "--passphrase-file", str(ca_dir / "secrets/passphrase"))
    _refused(ca_dir, 2, "a root rolls over to a new key", *root, "--same-key", *parent_key(ca_dir))
    _refused(ca_dir, 2, "is not the key of", *root, "--new-key", *issuing_key)
    assert not out.exists()
    _refused(ca_dir, 1, "no CA named 'nope'", "ca", "rollover", "nope", "--same-key", *parent_key(ca_dir))

    code, _, err = tetra(ca_dir, *rollover, "--same-key", *parent_key(ca_dir))
    assert code == 0, err
    _refused(ca_dir, 1, "issuing-ca.2 is already staged", *rollover, "--new-key", *parent_key(ca_dir))

    external = _future_generation(ca_dir, "ext-ca", 1, days=0)
    now = dt.datetime.now(dt.UTC)
    orphan = Authority("ext-ca", "ext-ca", 1, Kind.ISSUING, None, external.der, external.key, now, now)
    _add(ca_dir, orphan)
    _refused(ca_dir, 1, "tetra ca csr --name ext-ca", "ca", "rollover", "ext-ca", "--new-key", *parent_key(ca_dir))
