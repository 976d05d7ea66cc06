"""micromdm's `scepclient` (Debian package `scep`, the Go SCEP stack MDM servers embed) against a
real `tetra serve` (SCEP-21).

scepclient has no separate operations: every run asks GetCACert, then GetCACaps, then sends one
PKIOperation, and -debug logs each step, which is what the GetCACert/GetCACaps row reads. Its
habits, from its source (cmd/scepclient in micromdm/scep) and Tetra's log of what it sent:
- it signs with SHA-1 and envelopes with single DES whatever GetCACaps says, so it enrols only on
  a profile with ``legacy = true`` (the rows below use ``legacy``; the default profile answers
  badAlg, which one row checks);
- it envelopes the request to *every* certificate GetCACert returned unless -ca-fingerprint
  (SHA-256) picks one, and panics on the first ECDSA one ("interface conversion: ... is
  *ecdsa.PublicKey, not *rsa.PublicKey"): Tetra's chain is ECDSA, so it is pointed at the RA;
- its Go CMS sends encryptedContent as a constructed, definite-length [0] (BER);
- the transactionID is the standard base64 of the first 20 octets of SHA-256 over the PKCS#1
  public key;
- it makes (or reuses) an RSA key and csr.pem beside -private-key; the CSR carries CN, O, OU and
  C from flags (C=US unless told otherwise) and, in 2.1.0, no SAN; the device profile keeps CN,
  O and OU and drops C, also when the renewal's CSR names it again;
- when -certificate already exists it sends a RenewalReq signed by that certificate, with the
  same key and CSR, hence the same transactionID as the first enrolment, and no challenge;
- it exits 1 with "... failInfo: X" on FAILURE, and sleeps 30 s between polls on PENDING (so no
  pending row here: sscep covers polling).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from interop.conftest import need
from interop.scep_certs import assert_issued, load_certificate
from interop.scep_server import ScepTetra

ORGANIZATION, UNIT = "Tetra Interop", "MDM"


@dataclass(frozen=True)
class Run:
    status: int
    log: str


class ScepClient:
    def __init__(self, binary: str, server: ScepTetra, directory: Path) -> None:
        self.binary, self.server, self.directory = binary, server, directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = directory / "device.key", directory / "device.pem"

    def ra_fingerprint(self) -> str:
        return load_certificate(self.server.ra_certificate).fingerprint(hashes.SHA256()).hex()

    def run(self, name: str, challenge: str = "", profile: str = "legacy") -> Run:
        command = [
            self.binary,
            *("-server-url", self.server.url(profile), "-private-key", str(self.key), "-certificate", str(self.cert)),
            *("-cn", name, "-organization", ORGANIZATION, "-ou", UNIT),  # and its default C=US
            *("-ca-fingerprint", self.ra_fingerprint(), "-debug"),
            *(("-challenge", challenge) if challenge else ()),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        return Run(done.returncode, done.stdout + done.stderr)


@pytest.fixture
def scepclient(scep_tetra: ScepTetra, tmp_path: Path) -> ScepClient:
    return ScepClient(need("scepclient"), scep_tetra, tmp_path / "device")


def _issued(client: ScepClient, name: str) -> None:
    """SCEP-12 for scepclient's certificate: chain, key, pkilint, and the subject it asked for."""
    cert = assert_issued(client.cert, client.key, name, root=client.server.root, chain=client.server.issuing_ca, dns=())
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [ORGANIZATION]
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == [UNIT]
    assert not cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)  # the profile drops it


def test_scepclient_reads_getcacert_and_getcacaps_scep_21(scepclient: ScepClient) -> None:
    """SCEP-21: scepclient parses GetCACert (the RA and the chain, by their SHA-256) and
    GetCACaps; its PKIOperation, sent with a wrong challenge, is FAILURE badRequest and
    nothing is issued."""
    before = scepclient.server.certificate_count()
    run = scepclient.run("caps.scepclient.example.com", challenge="not-the-challenge")
    assert run.status == 1 and "failInfo: badRequest" in run.log, run.log[-3000:]
    assert "op=GetCACert error=null" in run.log and "op=GetCACaps error=null" in run.log, run.log[-3000:]
    server = scepclient.server
    for cert in (server.ra_certificate, server.issuing_ca):
        assert f"hash={load_certificate(cert).fingerprint(hashes.SHA256()).hex()}" in run.log, run.log[-3000:]
    assert server.certificate_count() == before and not scepclient.cert.exists()


def test_scepclient_is_refused_badalg_on_a_strict_profile_scep_21(scepclient: ScepClient) -> None:
    """SCEP-21 / SCEP-02: on the default (strict) profile scepclient's SHA-1/DES request is
    FAILURE badAlg; nothing is issued."""
    before = scepclient.server.certificate_count()
    run = scepclient.run("strict.scepclient.example.com", scepclient.server.static_challenge, profile="")
    assert run.status == 1 and "failInfo: badAlg" in run.log, run.log[-3000:]
    assert scepclient.server.certificate_count() == before and not scepclient.cert.exists()


def test_scepclient_enrolls_with_the_static_challenge_scep_21(scepclient: ScepClient) -> None:
    """SCEP-21 / SCEP-12: PKCSReq with the static challenge on the legacy profile; the
    certificate is written."""
    name = "enrol.scepclient.example.com"
    run = scepclient.run(name, challenge=scepclient.server.static_challenge)
    assert run.status == 0, run.log[-3000:]
    _issued(scepclient, name)


def test_scepclient_renews_with_its_certificate_scep_21(scepclient: ScepClient) -> None:
    """SCEP-21 / SCEP-07 / SCEP-17: a second run with the certificate present is a RenewalReq
    signed by it (same key, same transactionID, no challenge): a new certificate, not the
    first one again."""
    name = "renew.scepclient.example.com"
    assert scepclient.run(name, challenge=scepclient.server.static_challenge).status == 0
    first = scepclient.directory / "first.pem"
    shutil.copy(scepclient.cert, first)
    run = scepclient.run(name)
    assert run.status == 0, run.log[-3000:]
    _issued(scepclient, name)
    assert load_certificate(scepclient.cert).serial_number != load_certificate(first).serial_number
