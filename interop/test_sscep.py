"""sscep (certnanny's SCEP client, the one Tetra's design names) against a real `tetra serve` (SCEP-20).

One server for the session, shared with test_scepclient.py (interop/scep_server.py: profiles
device, onetime, held, legacy; a staged next CA); each row enrols its own name, so a row fails
on its own. Every certificate sscep writes is held to SCEP-12 (interop/scep_certs.py: chains to
the root, the requested name, the client's key, pkilint clean). Refusals are sscep's exit
status for the failInfo, with the certificate count unchanged. How sscep behaves on the wire:
interop/sscep_client.py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from interop.conftest import built_client
from interop.scep_certs import assert_issued, csr_with_challenge, load_certificate, rsa_key
from interop.scep_server import ScepTetra
from interop.sscep_client import BAD_ALG, BAD_REQUEST, Sscep
from tests.integration.est_support import openssl
from tests.pkilint_check import assert_crl_lints_clean


@pytest.fixture(scope="module")
def sscep_bin() -> Path:
    return built_client("sscep")


@pytest.fixture
def sscep(sscep_bin: Path, scep_tetra: ScepTetra, tmp_path: Path) -> Sscep:
    return Sscep(sscep_bin, scep_tetra, tmp_path)


def _written(prefix: Path) -> list[x509.Certificate]:
    files = sorted(prefix.parent.glob(f"{prefix.name}-*"))
    return [load_certificate(f) for f in files]


def _enroll(
    sscep: Sscep,
    profile: str,
    name: str,
    challenge: str = "",
    *,
    cipher: str = "aes",
    digest: str = "sha256",
) -> tuple[Path, Path]:
    """A key, a CSR with `challenge` (default: the static one) and a successful `sscep enroll`;
    (certificate, key), checked (SCEP-12)."""
    key = rsa_key(sscep.directory / f"{name}.key")
    csr = csr_with_challenge(sscep.directory, name, key, challenge or sscep.server.static_challenge)
    cert = sscep.directory / f"{name}.pem"
    sscep.enroll(profile, key, csr, cert, cipher=cipher, digest=digest).expect(0)
    server = sscep.server
    assert_issued(cert, key, name, root=server.root, chain=server.issuing_ca)
    return cert, key


def _refused(sscep: Sscep, profile: str, name: str, challenge: str, status: int, *, cipher: str = "aes") -> None:
    """`sscep enroll` ends with the failInfo's exit status, and nothing is issued."""
    key = rsa_key(sscep.directory / f"{name}.key")
    csr = csr_with_challenge(sscep.directory, name, key, challenge)
    before = sscep.server.certificate_count()
    outcome = sscep.enroll(profile, key, csr, sscep.directory / f"{name}.pem", cipher=cipher)
    outcome.expect(status)
    assert "pkistatus: FAILURE" in outcome.output
    assert sscep.server.certificate_count() == before
    assert not (sscep.directory / f"{name}.pem").exists()


def test_sscep_getca_writes_the_ra_and_ca_certificates_scep_20(sscep: Sscep) -> None:
    """SCEP-20: getca writes the RA certificate and the issuing chain, and the SHA-256
    fingerprints sscep prints are those of Tetra's RA and issuing CA."""
    prefix = sscep.directory / "getca.crt"
    outcome = sscep.run("getca", "", "-c", str(prefix), "-F", "sha256").expect(0)
    written = {c.fingerprint(hashes.SHA256()) for c in _written(prefix)}
    server = sscep.server
    for expected in (server.ra_certificate, server.issuing_ca):
        fingerprint = load_certificate(expected).fingerprint(hashes.SHA256())
        assert fingerprint in written, f"getca did not write {expected.name}"
        assert fingerprint.hex(":").upper() in outcome.output


def test_sscep_getcaps_lists_modern_algorithms_only_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-01: the default profile advertises AES, SHA-256, POST, renewal and
    GetNextCACert but neither DES3 nor SHA-1; the legacy profile adds both."""
    strict = sscep.run("getcaps", "").expect(0).output
    for capability in ("AES", "POSTPKIOperation", "Renewal", "SHA-256", "SCEPStandard", "GetNextCACert"):
        assert capability in strict, strict
    assert "DES3" not in strict and "SHA-1" not in strict, strict
    legacy = sscep.run("getcaps", "legacy").expect(0).output
    assert "DES3" in legacy and "SHA-1" in legacy, legacy


def test_sscep_getnextca_returns_the_staged_ca_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-19: getnextca verifies the RA's signature with the current chain and
    writes the staged next CA certificate."""
    server = sscep.server
    chain = sscep.directory / "chain.pem"
    chain.write_bytes(server.issuing_ca.read_bytes() + server.root.read_bytes())
    prefix = sscep.directory / "next.crt"
    sscep.run("getnextca", "", "-C", str(chain), "-c", str(prefix), "-F", "sha256").expect(0)
    written = {c.fingerprint(hashes.SHA256()) for c in _written(prefix)}
    assert load_certificate(server.next_ca).fingerprint(hashes.SHA256()) in written


def test_sscep_enrolls_with_the_static_challenge_aes_sha256_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-12: PKCSReq by POST, AES envelope, SHA-256 signature, static challenge."""
    _enroll(sscep, "", "static.sscep.example.com", cipher="aes", digest="sha256")


def test_sscep_enrolls_with_a_one_time_challenge_once_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-03 / SCEP-15: a one-time challenge from `tetra scep challenge`, bound to the
    name it enrols, works once; the same challenge again is refused with badRequest and nothing
    is issued."""
    challenge = sscep.server.one_time_challenge("onetime", "once.sscep.example.com")
    _enroll(sscep, "onetime", "once.sscep.example.com", challenge)
    again = Sscep(sscep.binary, sscep.server, sscep.directory / "again")  # a new key, the same name
    _refused(again, "onetime", "once.sscep.example.com", challenge, BAD_REQUEST)


def test_sscep_refuses_a_wrong_challenge_scep_20(sscep: Sscep) -> None:
    """SCEP-20: a wrong static challenge is FAILURE badRequest; nothing issued."""
    _refused(sscep, "", "wrong.sscep.example.com", "not-the-challenge", BAD_REQUEST)


def test_sscep_polls_a_pending_enrolment_until_approved_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-14: the held profile answers PENDING; sscep polls with GetCertInitial
    (CertPoll) every second; `tetra requests approve ID` lets the next poll return the certificate."""
    name = "held.sscep.example.com"
    key = rsa_key(sscep.directory / f"{name}.key")
    csr = csr_with_challenge(sscep.directory, name, key, sscep.server.static_challenge)
    cert = sscep.directory / f"{name}.pem"
    polling = sscep.start_enroll("held", key, csr, cert, "-t", "1", "-T", "40", "-n", "40")
    try:
        request_id = _wait_for_pending(sscep.server, name, polling)
        sscep.server.cli("requests", "approve", str(request_id))
        output, _ = polling.communicate(timeout=30)
    finally:
        polling.kill()
    assert polling.returncode == 0, output[-3000:]
    assert "pkistatus: PENDING" in output and "requesting certificate (#" in output, output[-3000:]
    assert_issued(cert, key, name, root=sscep.server.root, chain=sscep.server.issuing_ca)


def test_sscep_polling_ends_in_failure_when_rejected_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-14: `tetra requests reject ID` turns the next poll into FAILURE badRequest
    (sscep exits 72); nothing is issued."""
    name = "rejected.sscep.example.com"
    key = rsa_key(sscep.directory / f"{name}.key")
    csr = csr_with_challenge(sscep.directory, name, key, sscep.server.static_challenge)
    cert = sscep.directory / f"{name}.pem"
    before = sscep.server.certificate_count()
    polling = sscep.start_enroll("held", key, csr, cert, "-t", "1", "-T", "40", "-n", "40")
    try:
        request_id = _wait_for_pending(sscep.server, name, polling)
        sscep.server.cli("requests", "reject", str(request_id), "--note", "interop test")
        output, _ = polling.communicate(timeout=30)
    finally:
        polling.kill()
    assert polling.returncode == BAD_REQUEST, output[-3000:]
    assert "pkistatus: FAILURE" in output, output[-3000:]
    assert sscep.server.certificate_count() == before and not cert.exists()


def _wait_for_pending(server: ScepTetra, name: str, polling: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert polling.poll() is None, f"sscep ended before approval: {polling.communicate()[0][-3000:]}"
        try:
            return server.pending_request(name)
        except AssertionError:
            time.sleep(0.2)
    raise AssertionError(f"no pending request for {name} after 20 s")


def test_sscep_getcert_returns_the_issued_certificate_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-18: GetCert by issuer and serial (signed with the client's own
    certificate) returns that very certificate."""
    cert, key = _enroll(sscep, "", "getcert.sscep.example.com")
    issued = load_certificate(cert)
    fetched = sscep.directory / "fetched.pem"
    args = ("-c", str(sscep.getca()), "-k", str(key), "-l", str(cert), "-O", str(sscep.server.issuing_ca))
    sscep.run("getcert", "", *args, "-s", str(issued.serial_number), "-w", str(fetched)).expect(0)
    assert load_certificate(fetched) == issued


def test_sscep_getcrl_returns_the_issuing_ca_crl_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-18: GetCRL for an issued certificate returns the issuing CA's current CRL,
    signed by that CA and pkilint clean."""
    cert, key = _enroll(sscep, "", "getcrl.sscep.example.com")
    crl = sscep.directory / "issuing.crl"
    args = ("-c", str(sscep.getca()), "-k", str(key), "-l", str(cert), "-O", str(cert), "-w", str(crl))
    sscep.run("getcrl", "", *args).expect(0)
    openssl("crl", "-in", str(crl), "-noout", "-CAfile", str(sscep.server.issuing_ca), "-verify")
    der = x509.load_pem_x509_crl(crl.read_bytes()).public_bytes(Encoding.DER)
    assert_crl_lints_clean(der)


def test_sscep_renews_with_the_old_certificate_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-07: a new key and a CSR without challenge, signed with the certificate
    being renewed (-K/-O; sscep sends it as a PKCSReq): a new certificate for the same name."""
    name = "renew.sscep.example.com"
    old_cert, old_key = _enroll(sscep, "", name)
    key = rsa_key(sscep.directory / "renewed.key")
    csr = csr_with_challenge(sscep.directory, name, key)
    new_cert = sscep.directory / "renewed.pem"
    sscep.enroll("", key, csr, new_cert, extra=("-K", str(old_key), "-O", str(old_cert))).expect(0)
    renewed = assert_issued(new_cert, key, name, root=sscep.server.root, chain=sscep.server.issuing_ca)
    assert renewed.serial_number != load_certificate(old_cert).serial_number


def test_sscep_legacy_profile_takes_des3_and_sha1_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-02: on the legacy profile a 3DES envelope signed with SHA-1 enrols."""
    _enroll(sscep, "legacy", "des3.sscep.example.com", cipher="3des", digest="sha1")


def test_sscep_strict_profile_refuses_des3_scep_20(sscep: Sscep) -> None:
    """SCEP-20 / SCEP-02: the default profile answers a 3DES envelope with FAILURE badAlg
    (sscep exits 70); nothing is issued."""
    _refused(sscep, "", "des3-refused.sscep.example.com", sscep.server.static_challenge, BAD_ALG, cipher="3des")
