"""A real `tetra serve` with SCEP on loopback, for the sscep and micromdm scepclient tests.

    from interop.scep_server import scep_tetra  # the fixture (one server per session); or start_scep_tetra(workdir)

    def test_something(scep_tetra: ScepTetra) -> None:
        scep_tetra.url("held")                 # http://127.0.0.1:PORT/scep/held (plain HTTP, as devices use)
        scep_tetra.root, scep_tetra.issuing_ca, scep_tetra.ra_certificate
        scep_tetra.one_time_challenge("onetime", "dev1.example.com")  # `tetra scep challenge`
        scep_tetra.cli("requests", "approve", str(scep_tetra.pending_request("held.example.com")))

SCEP profiles, each selected by its path label ``/scep/<profile>``:

- ``device``: what `tetra init` (and so `make run`) sets up, untouched: ``/scep`` selects it, its
  static challenge is ``secrets/scep-challenge`` (:attr:`ScepTetra.static_challenge`), modern
  algorithms only (AES, SHA-2);
- ``onetime``: no static challenge, only one-time challenges from `tetra scep challenge`;
- ``held``: the same static challenge, but the certificate profile needs an operator's approval
  (PENDING until `tetra requests approve ID`);
- ``legacy``: the same static challenge and ``legacy = true`` (DES/3DES, SHA-1 and MD5 accepted).

The last three are certificate profiles copied from the shipped ``device`` one.

A next issuing CA (`tetra ca init-intermediate`, signed by the root) is staged with
``[issuers.issuing-ca] next_certificate``, so GetNextCACert has a rollover to announce.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from interop.acme_server import protocols
from tests.integration.est_support import _profile_from_device
from tests.tetra_process import TetraProcess, free_port, init_ca, tetra_command

NEXT_CA = "next-issuing-ca"

# Appended to the [scep] section `tetra init` writes (default profile device, static challenge file).
EXTRA_PROFILES = """
[scep.profiles.onetime]
one_time_challenges = true

[scep.profiles.held]
challenge_file = "secrets/scep-challenge"

[scep.profiles.legacy]
challenge_file = "secrets/scep-challenge"
legacy = true
"""


class ScepTetra(TetraProcess):
    host = "127.0.0.1"

    def __init__(self, directory: Path, http_port: int, https_port: int, log: Path) -> None:
        self.directory = directory
        self.http_port = http_port
        self.https_port = https_port
        env = {"TETRA_SERVER__PROTOCOLS": json.dumps(sorted({*protocols(), "scep"}))}
        super().__init__(directory / "tetra.toml", env, log)

    @property
    def root(self) -> Path:
        return self.directory / "ca" / "root.pem"

    @property
    def issuing_ca(self) -> Path:
        return self.directory / "ca" / "issuing-ca.pem"

    @property
    def next_ca(self) -> Path:
        return self.directory / "ca" / f"{NEXT_CA}.pem"

    @property
    def ra_certificate(self) -> Path:
        return self.directory / "ra" / "ra.pem"

    @property
    def static_challenge(self) -> str:
        """The demo's static challenge (profiles device, held and legacy)."""
        return (self.directory / "secrets" / "scep-challenge").read_text().strip()

    def url(self, profile: str = "") -> str:
        """The SCEP URL of a profile (its path label) on the plain-HTTP listener."""
        return f"http://{self.host}:{self.http_port}/scep" + (f"/{profile}" if profile else "")

    def one_time_challenge(self, profile: str, name: str = "") -> str:
        """A fresh one-time challenge for `profile`, bound to CN and DNS name `name` if given, as an
        operator makes it: `tetra scep challenge --profile P [--cn NAME --dns NAME]`."""
        bound = ("--cn", name, "--dns", name) if name else ()
        try:
            out = self.cli("scep", "challenge", "--profile", profile, *bound)
        except AssertionError as failed:
            if "invalid choice: 'scep'" not in str(failed):
                raise
            return self._challenge_through_core(profile, name)  # until `tetra scep challenge` is merged
        return out.strip().splitlines()[-1].strip()

    def _challenge_through_core(self, profile: str, name: str) -> str:
        """What `tetra scep challenge` stores, through the core's credential store (same database)."""
        from ca.credentials import CredentialStore
        from ca.store.db import Database

        async def create() -> str:
            db = Database(self.database_url)
            try:
                identities = (f"cn:{name}", f"dns:{name}") if name else ()
                return await CredentialStore(db).create_challenge("scep", profile=profile, identities=identities)
            finally:
                await db.close()

        return asyncio.run(create())

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.directory / 'tetra.db'}"

    def pending_request(self, name: str) -> int:
        """The id of the request for DNS name `name` waiting for approval (`tetra requests list`)."""
        for line in self.cli("requests", "list", "--status", "pending").splitlines():
            fields = line.split()
            if fields and f"dns:{name}" in fields[-1].split(","):
                return int(fields[0])
        raise AssertionError(f"no pending request for {name}")

    def certificate_count(self) -> int:
        """Certificates in the store: "nothing issued" is this number not moving."""
        with sqlite3.connect(self.directory / "tetra.db") as db:
            return int(db.execute("SELECT count(*) FROM certificates").fetchone()[0])


def _stage_next_ca(server_dir: Path) -> None:
    """A second issuing CA signed by the root, staged as the issuing CA's successor."""
    passphrase = str(server_dir / "secrets" / "passphrase")
    init = [
        *("ca", "init-intermediate", "--name", NEXT_CA, "--out-dir", str(server_dir / "ca")),
        *("--common-name", "Tetra Demo Issuing CA 2", "--organization", "Tetra", "--path-length", "0"),
        *("--passphrase-file", passphrase, "--parent-passphrase-file", passphrase),
        *("--parent-cert", str(server_dir / "ca" / "root.pem"), "--parent-key", str(server_dir / "keys" / "root.key")),
    ]
    subprocess.run([*tetra_command(), *init], check=True, capture_output=True, timeout=60)
    config = server_dir / "tetra.toml"
    text = config.read_text()
    issuer = '[issuers.issuing-ca]\ncertificate = "ca/issuing-ca.pem"\n'
    assert issuer in text, "tetra init's [issuers.issuing-ca] table changed: update interop/scep_server.py"
    config.write_text(text.replace(issuer, f'{issuer}next_certificate = "ca/{NEXT_CA}.pem"\n'))


def prepare_scep_ca(directory: Path) -> None:
    """The SCEP test profiles and the staged next CA, in a `tetra init` directory (which serves
    SCEP on profile device already)."""
    profiles = directory / "profiles"
    _profile_from_device(profiles, "onetime")
    _profile_from_device(profiles, "held", approval="manual")
    _profile_from_device(profiles, "legacy")
    _stage_next_ca(directory)
    config = directory / "tetra.toml"
    assert "\n[scep]\n" in config.read_text(), "tetra init no longer writes a [scep] section"
    with config.open("a") as out:
        out.write(EXTRA_PROFILES)


def start_scep_tetra(workdir: Path) -> ScepTetra:
    """A fresh `tetra init` in workdir/tetra with the SCEP test profiles, served on free ports."""
    http_port, https_port = free_port(), free_port()
    directory = workdir / "tetra"
    init_ca(directory, http_port, https_port)
    prepare_scep_ca(directory)
    server = ScepTetra(directory, http_port, https_port, workdir / "tetra.log")
    server.wait_ready(f"http://127.0.0.1:{http_port}/healthz", timeout=30)
    return server


@pytest.fixture(scope="session")
def scep_tetra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScepTetra]:
    """One server for the sscep and scepclient modules (a start costs about 9 s of the 60 s the
    SCEP interop run may take): each row enrols its own names and counts certificates around
    its own refusals only, so rows do not interfere."""
    server = start_scep_tetra(tmp_path_factory.mktemp("scep"))
    try:
        yield server
    finally:
        server.stop()
