"""Discovery into the inventory, through `tetra discover` run as a real process against TLS
servers this test starts on loopback, on SQLite and PostgreSQL.

CLM-01: a certificate Tetra issued, served at two endpoints and found again in a file, is one
inventory record with its sightings (first and last seen kept across scans). CLM-05: a range
above the cap and a target outside the allow-list are refused before any packet, with no scan
recorded. Scheduled scans run once per period whatever the number of processes (a lease).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Issued, Requester
from ca.inventory.model import InventoryFilter, Source
from ca.service import CertificateAuthority
from server.config import ServerConfig
from server.discovery.schedule import DiscoveryScheduler
from server.wiring import build_ca, read_config
from tests.cli_here import tetra_here
from tests.discovery_pki import issue
from tests.discovery_servers import refused_port, serve, server_context, until_closed
from tests.helpers import enroll, make_csr

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)


async def tetra(config: ServerConfig, *args: str) -> tuple[int, str, str]:
    """`tetra ARGS --config FILE` (server.cli.main in this process, tests/cli_here.py), awaited
    from a worker thread so that this test's servers on the event loop keep answering."""
    env = {"TETRA_DATABASE__URL": config.database_url}
    done = await asyncio.to_thread(tetra_here, *args, "--config", str(config.source), env=env)
    return done.returncode, done.stdout, done.stderr


async def _tetra_leaf(ca: CertificateAuthority, tmp_path: Path) -> tuple[ssl.SSLContext, x509.Certificate]:
    """A server certificate issued by this CA, and a server context presenting it with its chain."""
    csr, key = make_csr(["shop.example.com"])
    request = enrollment_from_csr(csr, protocol="cli", profile_name="tls-server", requester=OPERATOR)
    outcome = await enroll(ca, request)
    assert isinstance(outcome, Issued)
    return server_context(tmp_path, [outcome.certificate, *outcome.chain], key), outcome.certificate


def _with_discovery(config: ServerConfig, text: str) -> ServerConfig:
    with config.source.open("a") as f:
        f.write("\n[discovery]\n" + text)
    return read_config(config.source, environ={"TETRA_DATABASE__URL": config.database_url})


async def test_endpoints_and_files_found_are_one_record_per_certificate(
    ca: CertificateAuthority, config: ServerConfig, tmp_path: Path
) -> None:
    """CLM-01 end to end: `tetra discover scan` finds the Tetra certificate at two endpoints and a
    stranger's expired self-signed one at a third; a second scan moves last-seen only; `tetra
    discover files` finds the same Tetra certificate in a PEM file: still one record."""
    context, leaf = await _tetra_leaf(ca, tmp_path)
    expired = issue("old.example.net", issuer=None, valid=(dt.timedelta(days=-30), dt.timedelta(days=-3)))
    stale = server_context(tmp_path, [expired.cert], expired.key)
    dead = refused_port()
    async with serve(until_closed, tls=context) as one, serve(until_closed, tls=context) as two:
        async with serve(until_closed, tls=stale) as three:
            ports = f"{one},{two},{three},{dead}"
            code, out, err = await tetra(config, "discover", "scan", "127.0.0.1", "--ports", ports, "--format", "json")
            assert code == 0, err
            first = json.loads(out)
            code, _, err = await tetra(config, "discover", "scan", "127.0.0.1", "--ports", ports)
            assert code == 0, err
            assert "4 endpoints" in err and "3 answered" in err and "1 connection refused" in err
    assert first["locations"] == 4 and first["answered"] == 3
    by_location = {r["location"]: r for r in first["results"]}
    assert by_location[f"127.0.0.1:{dead}"]["error"] and not by_location[f"127.0.0.1:{dead}"]["certificates"]
    codes = {f["code"] for f in by_location[f"127.0.0.1:{three}"]["findings"]}
    assert {"expired", "self-signed"} <= codes

    pem = tmp_path / "deployed" / "shop.pem"
    pem.parent.mkdir()
    pem.write_bytes(leaf.public_bytes(Encoding.PEM))
    code, _, err = await tetra(config, "discover", "files", str(pem.parent))
    assert code == 0, err

    records = await ca.inventory.records(InventoryFilter(name="shop.example.com"))
    assert len(records) == 1
    record = records[0]
    assert record.source is Source.TETRA and record.certificate_id is not None
    seen = {s.location: s for s in await ca.inventory.sightings(record.id)}
    assert set(seen) == {f"127.0.0.1:{one}", f"127.0.0.1:{two}", str(pem)}
    assert all(s.first_seen < s.last_seen for loc, s in seen.items() if loc != str(pem))  # two scans
    assert seen[str(pem)].kind == "file"

    code, out, err = await tetra(config, "inventory", "list", "--seen-at", "127.0.0.1:", "--format", "json")
    assert code == 0, err
    listed = {r["subject"]: r for r in json.loads(out)}
    assert set(listed) == {leaf.subject.rfc4514_string(), expired.cert.subject.rfc4514_string()}
    assert listed[expired.cert.subject.rfc4514_string()]["source"] == "discovered"
    assert listed[expired.cert.subject.rfc4514_string()]["status"] == "expired"

    code, out, err = await tetra(config, "discover", "findings", "--format", "json")
    assert code == 0, err
    findings = {(f["location"], f["code"]) for f in json.loads(out)}
    assert (f"127.0.0.1:{three}", "self-signed") in findings and (f"127.0.0.1:{three}", "expired") in findings
    assert not any(loc == f"127.0.0.1:{one}" for loc, _ in findings)  # a good endpoint has nothing to say


async def test_scans_beyond_the_cap_or_allow_list_are_refused_before_any_packet(ca_dir: Path) -> None:
    """CLM-05: a /8 over the cap, an address outside the allow-list and a bad port list are each
    one line, exit 2, and no scan is recorded (the refusal comes before the scan exists, so one
    store, SQLite, shows it)."""
    url = f"sqlite:///{ca_dir / 'tetra.db'}"
    config = _with_discovery(
        read_config(ca_dir / "tetra.toml", environ={}), 'max_endpoints = 4096\nallow = ["127.0.0.0/8"]\n'
    )
    assert config.database_url == url
    cases = {
        ("10.0.0.0/8",): "cap of 4096",
        ("192.0.2.10",): "192.0.2.10",
        ("127.0.0.1", "--ports", "0,70000"): "port",
    }
    for args, expected in cases.items():
        code, out, err = await tetra(config, "discover", "scan", *args)
        assert code == 2 and "nothing sent" in err and expected in err, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, out, err = await tetra(config, "discover", "scans", "--format", "json")
    assert code == 0 and json.loads(out) == []


@pytest.mark.postgres
async def test_a_scheduled_scan_runs_once_across_processes(ca_dir: Path, postgres_url: str, tmp_path: Path) -> None:
    """Two server processes' schedulers (each with its own engine on one PostgreSQL database)
    look at the same moment: one scan runs; looking again within the period runs none."""
    from ca.store.migrate import upgrade

    upgrade(postgres_url)
    stranger = issue("sched.example.net", issuer=None)
    context = server_context(tmp_path, [stranger.cert], stranger.key)
    async with serve(until_closed, tls=context) as port:
        source = ca_dir / "tetra.toml"
        with source.open("a") as f:
            f.write(f'\n[discovery.schedules.loopback]\ntargets = ["127.0.0.1:{port}"]\nevery = "1h"\n')
        config = read_config(source, environ={"TETRA_DATABASE__URL": postgres_url})
        first, second = await build_ca(config), await build_ca(config)
        try:
            schedulers = [
                DiscoveryScheduler(c, config.discovery, f"process-{n}") for n, c in enumerate((first, second))
            ]
            ran = await asyncio.gather(*(s.tick() for s in schedulers))
            assert sorted(len(r) for r in ran) == [0, 1]
            assert await asyncio.gather(*(s.tick() for s in schedulers)) == [[], []]
            scans = await first.scans.recent()
            assert [(s.requested_by, s.status) for s in scans] == [("schedule:loopback", "done")]
            found = await first.inventory.records(InventoryFilter(seen_at=f"127.0.0.1:{port}"))
            assert [r.subject for r in found] == [stranger.cert.subject.rfc4514_string()]
        finally:
            await first.close()
            await second.close()
