"""SCEP-15: `tetra scep challenge` as an operator (or an MDM script) runs it, on SQLite and PostgreSQL.

`server.cli.main` in this process (tests/cli_here.py) against a `tetra init` directory: a challenge printed alone on
the last line, bound to the names given (cn:, dns:), good once within its ttl; `challenge list`
shows unused, used, expired and revoked challenges without ever printing one; `challenge
revoke ID` withdraws one. Every mistake is one line on stderr, exit 2, no traceback, nothing
stored. The challenges are consumed through the same core the SCEP handlers use, and once
through `tetra serve` itself: a challenge bound to names enrols those names only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ca.service import CertificateAuthority
from tests import scep_client
from tests.cli_here import tetra_here
from tests.integration.scep_support import ScepServer, scep_server
from tests.pkilint_check import assert_certificate_lints_clean

pytestmark = pytest.mark.slow


@pytest.fixture
def ca_dir(ca_dir: Path) -> Path:
    """The demo CA with two SCEP profiles where a one-time challenge could never be used."""
    with (ca_dir / "tetra.toml").open("a") as config:
        config.write(
            """
[scep.profiles.tls-client]
challenge = "static-only-secret"
one_time_challenges = false

[scep.profiles.email]
webhook_url = "http://127.0.0.1:9/validate"
"""
        )
    return ca_dir


def cli(ca_dir: Path, db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return tetra_here("scep", *args, "--config", str(ca_dir / "tetra.toml"), env={"TETRA_DATABASE__URL": db_url})


def ok(ca_dir: Path, db_url: str, *args: str) -> str:
    done = cli(ca_dir, db_url, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def listing(ca_dir: Path, db_url: str) -> dict[int, list[str]]:
    """`challenge list` as {ID: [STATE, PROFILE, CREATED, EXPIRES, NAMES]}."""
    rows = ok(ca_dir, db_url, "challenge", "list").splitlines()[1:]
    return {int(row.split()[0]): row.split()[1:] for row in rows}


async def test_scep15_challenge_lifecycle(ca: CertificateAuthority, ca_dir: Path, db_url: str) -> None:
    """SCEP-15: create bound to names, list (secret never shown), consume once, expire, revoke."""
    out = ok(ca_dir, db_url, "challenge", "--profile", "device", "--cn", "router1", "--dns", "Router1.Example.com.")
    *preamble, secret = out.splitlines()
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", secret), out
    assert "profile device" in preamble[0] and "cn:router1, dns:router1.example.com" in preamble[0]
    [created] = await ca.credentials.list_credentials("scep", "challenge")
    credential = created[0]
    assert credential.profile == "device" and credential.identities == ("cn:router1", "dns:router1.example.com")
    assert credential.expires_at is not None and credential.created_at is not None
    assert dt.timedelta(minutes=59) < credential.expires_at - credential.created_at <= dt.timedelta(hours=1)

    listed = ok(ca_dir, db_url, "challenge", "list")
    assert secret not in listed
    assert listing(ca_dir, db_url)[credential.id][0] == "unused"
    assert listing(ca_dir, db_url)[credential.id][-1] == "cn:router1,dns:router1.example.com"

    consumed = await ca.credentials.consume_challenge("scep", secret)
    assert consumed is not None and consumed.identities == credential.identities
    assert await ca.credentials.consume_challenge("scep", secret) is None  # one time
    assert listing(ca_dir, db_url)[credential.id][0] == "used"

    short = await ca.credentials.create_challenge("scep", profile="device", ttl=dt.timedelta(milliseconds=200))
    await asyncio.sleep(0.3)
    states = listing(ca_dir, db_url)
    assert sorted(s[0] for s in states.values()) == ["expired", "used"]
    assert await ca.credentials.consume_challenge("scep", short) is None

    longer = ok(ca_dir, db_url, "challenge", "--profile", "device", "--ttl", "2d").splitlines()[-1]
    new_id = max(listing(ca_dir, db_url))
    assert listing(ca_dir, db_url)[new_id][0] == "unused"
    assert f"SCEP challenge {new_id} revoked" in ok(ca_dir, db_url, "challenge", "revoke", str(new_id))
    assert listing(ca_dir, db_url)[new_id][0] == "revoked"
    assert await ca.credentials.consume_challenge("scep", longer) is None
    assert "no SCEP challenges" in ok(ca_dir, db_url, "challenge", "list", "--profile", "tls-client")


MISTAKES = [
    (("challenge", "--profile", "nosuch"), "no profile named 'nosuch'"),
    (("challenge", "--profile", "code-signing"), "profile 'code-signing' does not allow SCEP"),
    (("challenge", "--profile", "tls-client"), "profile 'tls-client' takes no one-time challenges"),
    (("challenge", "--profile", "email"), "profile 'email' has a validation webhook"),
    (("challenge",), "--profile is required"),
    (("challenge", "--profile", "device", "--ttl", "1 hour"), "--ttl: '1 hour' is not a duration"),
    (("challenge", "--profile", "device", "--ttl", "0m"), "--ttl: '0m' is outside 1m to 30d"),
    (("challenge", "--profile", "device", "--ttl", "90d"), "--ttl: '90d' is outside 1m to 30d"),
    (("challenge", "--profile", "device", "--cn", ""), "--cn: a common name is 1 to 64"),
    (("challenge", "--profile", "device", "--cn", "x" * 65), "--cn: a common name is 1 to 64"),
    (("challenge", "--profile", "device", "--dns", "a b"), "--dns: 'a b' is not a DNS name"),
    (("challenge", "revoke"), "takes the challenge's ID"),
    (("challenge", "revoke", "abc"), "takes the challenge's ID"),
    (("challenge", "revoke", "999"), "no active SCEP challenge with ID 999"),
    (("challenge", "list", "7"), "`challenge list` takes only --profile"),
]


def test_scep15_challenge_mistakes(ca_dir: Path) -> None:
    """SCEP-15: each mistake is one line on stderr, exit 2, and stores no challenge (checked on
    SQLite only: the refusals come before the store is written)."""
    db_url = f"sqlite:///{ca_dir / 'tetra.db'}"
    for args, message in MISTAKES:
        done = cli(ca_dir, db_url, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert message in done.stderr, (args, done.stderr)
    with sqlite3.connect(ca_dir / "tetra.db") as db:
        assert db.execute("SELECT count(*) FROM credentials").fetchone() == (0,)


@pytest.fixture
def scep(ca_dir: Path, tmp_path: Path) -> Iterator[ScepServer]:
    yield from scep_server(ca_dir, tmp_path)


def test_scep15_cli_challenge_enrols_its_names_only(scep: ScepServer) -> None:
    """SCEP-15 end to end: a challenge `tetra scep challenge` made for cn:/dns: names enrols a
    PKCSReq for those names through `tetra serve`, once; one made for other names is refused
    (FAILURE badRequest) and nothing is issued for it."""
    ra = scep.ra_certificate()
    name = "router7.example.com"
    bound = scep.cli("scep", "challenge", "--profile", "device", "--cn", name, "--dns", name).splitlines()[-1]
    elsewhere = scep.cli("scep", "challenge", "--profile", "device", "--dns", "other.example.com").splitlines()[-1]

    requester = scep_client.Requester.fresh(name)
    reply = scep.exchange(scep_client.pkcs_req(requester, ra, name, [name], challenge=bound), requester)
    assert reply.status == scep_client.SUCCESS, reply
    assert reply.certificate.public_key() == requester.key.public_key()
    assert_certificate_lints_clean(reply.certificate.public_bytes(Encoding.DER))

    before = scep.counts()
    for challenge in (bound, elsewhere):  # used once already; made for another name
        again = scep_client.Requester.fresh(name)
        reply = scep.exchange(scep_client.pkcs_req(again, ra, name, [name], challenge=challenge), again)
        assert (reply.status, reply.fail_info) == (scep_client.FAILURE, scep_client.BAD_REQUEST), reply
    assert scep.counts() == before
    states = sorted(row.split()[1] for row in scep.cli("scep", "challenge", "list").splitlines()[1:])
    assert states == ["used", "used"]  # a one-time challenge is spent by its first use, right or wrong
