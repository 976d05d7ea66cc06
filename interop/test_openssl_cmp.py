"""The Debian `openssl cmp` client (OpenSSL 3.0) against a real `tetra serve` (CMP-14).

One server for the module (interop/cmp_server.py: profiles device and held, a device maker's CA
as a [cmp] trust anchor). Each row is one `openssl cmp` run, in the manner of OpenSSL's
test/recipes/80-test_cmp_http_data/*.csv: a command, a protection and what must come of it.
Protections: ``mac`` (`-ref -secret`, the secret `tetra cmp secret add` generated), ``tetra``
(`-cert -key`: a certificate Tetra issued earlier in the module) and ``maker`` (`-cert -key`: a
device certificate from the maker's CA, which may only ir/cr/p10cr). Replies are judged by
openssl against the CA root (`-trusted`). Every certificate issued passes `openssl verify` up
to the root and pkilint; a revoked one is revoked in `tetra inventory list` and in OCSP. Refusals
(REFUSALS): openssl exits non-zero, its log names the failInfo, and nothing is issued.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from interop.cmp_server import HELD, CmpTetra, start_cmp_tetra
from interop.conftest import need
from tests.doc_blocks import Block, blocks
from tests.doc_shell import ShellSession
from tests.integration.est_support import device_certificate, factory_ca, openssl
from tests.pkilint_check import assert_certificate_lints_clean

REFERENCE, HELD_REFERENCE = "device-ref", "held-ref"
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "cmp.md"
GUIDE_SERVER = "127.0.0.1:8080"  # `make run`'s plain-HTTP listener, which the guide's commands name
SIGNER = "signer.example.com"  # the name of the Tetra certificate that signs the `tetra` rows


@dataclass(frozen=True)
class Identity:
    """How a row protects its requests: the `openssl cmp` options, and the name it may enrol."""

    options: tuple[str, ...]
    name: str = ""  # "": any name (MAC, maker); else the signer's own name (Tetra's ownership rule)
    certificate: Path | None = None  # the protection certificate, if any


@dataclass
class Module:
    server: CmpTetra
    identities: dict[str, Identity]
    secrets: dict[str, str]
    directory: Path


def new_key(path: Path) -> Path:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    return path


def write_pair(
    directory: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(certificate.public_bytes(Encoding.PEM))
    key_path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return cert_path, key_path


def succeeded(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"openssl cmp failed ({result.returncode}): {result.stdout}"
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], fail_info: str) -> None:
    assert result.returncode != 0, f"openssl cmp succeeded where it must not: {result.stdout}"
    assert f"PKIFailureInfo: {fail_info}" in result.stdout, result.stdout


def assert_issued(server: CmpTetra, certificate: Path, key: Path) -> x509.Certificate:
    """CMP-14's acceptance of one issued certificate: it verifies up to the root through the
    issuing CA, is pkilint clean and certifies the key openssl made."""
    openssl("verify", "-CAfile", str(server.root), "-untrusted", str(server.issuing_ca), str(certificate))
    issued = x509.load_pem_x509_certificate(certificate.read_bytes())
    assert_certificate_lints_clean(issued.public_bytes(Encoding.DER))
    assert openssl("pkey", "-in", str(key), "-pubout") == openssl("x509", "-in", str(certificate), "-noout", "-pubkey")
    return issued


def enrol_by_mac(module: Module, directory: Path, name: str) -> tuple[Path, Path]:
    """A fresh certificate for `name` by a MAC-protected ir: (certificate, key)."""
    key, certificate = new_key(directory / f"{name}.key"), directory / f"{name}.pem"
    mac = module.identities["mac"].options
    succeeded(module.server.openssl_cmp("-cmd", "ir", *mac, *enrol_options(key, name), "-certout", str(certificate)))
    return certificate, key


def enrol_options(key: Path, name: str) -> tuple[str, ...]:
    return ("-newkey", str(key), "-subject", f"/CN={name}", "-sans", name)


def certificate_identities(module: Module) -> None:
    """The signing identities: a Tetra certificate (enrolled by MAC here), a device certificate
    from the maker's CA (a trust anchor) and one from another maker's CA (no trust anchor; a
    self-signed -cert would not do: openssl 3.0 leaves self-signed certificates out of
    extraCerts, so the server would see no protection certificate and answer badMessageCheck)."""
    server, directory = module.server, module.directory
    signer, signer_key = enrol_by_mac(module, directory, SIGNER)
    tetra = ("-cert", str(signer), "-key", str(signer_key), "-extracerts", str(server.issuing_ca))
    module.identities["tetra"] = Identity(tetra, SIGNER)
    device, device_key = write_pair(directory, "maker-device", *device_certificate(*server.maker, "SN-OPENSSL-1"))
    module.identities["maker"] = Identity(("-cert", str(device), "-key", str(device_key)), certificate=device)
    other_maker = directory / "other-maker"
    other_maker.mkdir()
    stranger = device_certificate(*factory_ca(other_maker), "SN-STRANGER")
    stranger_cert, stranger_key = write_pair(directory, "stranger", *stranger)
    module.identities["stranger"] = Identity(("-cert", str(stranger_cert), "-key", str(stranger_key)))


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Module]:
    need("openssl")
    directory = tmp_path_factory.mktemp("cmp")
    server = start_cmp_tetra(directory)
    try:
        secrets = {
            REFERENCE: server.add_secret(REFERENCE, "device"),
            HELD_REFERENCE: server.add_secret(HELD_REFERENCE, HELD),
        }
        identities = {
            "mac": Identity(("-ref", REFERENCE, "-secret", f"pass:{secrets[REFERENCE]}")),
            "wrong-secret": Identity(("-ref", REFERENCE, "-secret", "pass:not-the-secret")),
            "unknown-reference": Identity(("-ref", "nobody", "-secret", "pass:not-the-secret")),
        }
        module = Module(server, identities, secrets, directory)
        certificate_identities(module)
        yield module
    finally:
        server.stop()


# (command, protection): ir, cr and p10cr with each protection
ENROLMENTS = [(command, protection) for command in ("ir", "cr", "p10cr") for protection in ("mac", "tetra", "maker")]


@pytest.mark.parametrize(("command", "protection"), ENROLMENTS, ids=[f"{c}-{p}" for c, p in ENROLMENTS])
def test_cmp14_enrolment(module: Module, tmp_path: Path, command: str, protection: str) -> None:
    """CMP-14: ir/cr (CRMF) and p10cr (a PKCS#10 CSR from `openssl req`), each with MAC, a
    Tetra certificate's signature and a device maker's certificate's signature."""
    identity = module.identities[protection]
    name = identity.name or f"{command}-{protection}.example.com"
    key, certificate = new_key(tmp_path / "new.key"), tmp_path / "new.pem"
    if command == "p10cr":
        csr = tmp_path / "new.csr"
        openssl(
            "req",
            "-new",
            "-key",
            str(key),
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-out",
            str(csr),
        )
        request: tuple[str, ...] = ("-csr", str(csr))
    else:
        request = enrol_options(key, name)
    succeeded(module.server.openssl_cmp("-cmd", command, *identity.options, *request, "-certout", str(certificate)))
    issued = assert_issued(module.server, certificate, key)
    assert issued.subject.rfc4514_string() == f"CN={name}"


@pytest.mark.parametrize("implicit", [True, False], ids=["implicitConfirm", "certConf"])
def test_cmp14_implicit_confirm_on_and_off(module: Module, tmp_path: Path, implicit: bool) -> None:
    """CMP-14: with -implicit_confirm the server grants it and openssl sends no certConf;
    without, openssl confirms with certConf and gets pkiconf."""
    key, certificate = new_key(tmp_path / "new.key"), tmp_path / "new.pem"
    name = f"implicit-{str(implicit).lower()}.example.com"
    flag = ("-implicit_confirm",) if implicit else ()
    options = module.identities["mac"].options
    log = succeeded(
        module.server.openssl_cmp(
            "-cmd", "ir", *options, *flag, *enrol_options(key, name), "-certout", str(certificate)
        )
    )
    assert ("sending CERTCONF" in log) is not implicit, log
    assert_issued(module.server, certificate, key)


def test_cmp14_ir_over_https(module: Module, tmp_path: Path) -> None:
    """CMP-14: the same MAC-protected ir on the HTTPS listener (`-tls_used`), the server's TLS
    certificate checked against the CA root."""
    key, certificate = new_key(tmp_path / "new.key"), tmp_path / "new.pem"
    options = (*module.server.tls_options, *module.identities["mac"].options)
    enrol = enrol_options(key, "https.example.com")
    log = succeeded(module.server.openssl_cmp("-cmd", "ir", *options, *enrol, "-certout", str(certificate)))
    assert f"will contact https://127.0.0.1:{module.server.https_port}/.well-known/cmp" in log, log
    assert_issued(module.server, certificate, key)


def test_cmp14_kur_signed_by_the_certificate_it_updates(module: Module, tmp_path: Path) -> None:
    """CMP-14: kur signed by a Tetra certificate (-oldcert is -cert) gets a certificate for a new key."""
    old, old_key = enrol_by_mac(module, tmp_path, "kur.example.com")
    key, certificate = new_key(tmp_path / "updated.key"), tmp_path / "updated.pem"
    signed = ("-cert", str(old), "-key", str(old_key), "-extracerts", str(module.server.issuing_ca))
    succeeded(module.server.openssl_cmp("-cmd", "kur", *signed, "-newkey", str(key), "-certout", str(certificate)))
    updated = assert_issued(module.server, certificate, key)
    assert updated.subject.rfc4514_string() == "CN=kur.example.com"


@pytest.mark.parametrize("protection", ["tetra", "mac"])
def test_cmp14_rr(module: Module, tmp_path: Path, protection: str) -> None:
    """CMP-14: rr signed by the certificate being revoked, or MAC with its profile's secret;
    the certificate is then revoked in the store (`tetra inventory list`) and in OCSP."""
    certificate, key = enrol_by_mac(module, tmp_path, f"rr-{protection}.example.com")
    if protection == "tetra":
        options: tuple[str, ...] = (
            "-cert",
            str(certificate),
            "-key",
            str(key),
            "-extracerts",
            str(module.server.issuing_ca),
        )
    else:
        options = module.identities["mac"].options
    succeeded(module.server.openssl_cmp("-cmd", "rr", *options, "-oldcert", str(certificate), "-revreason", "1"))
    serial = x509.load_pem_x509_certificate(certificate.read_bytes()).serial_number
    assert module.server.certificate_status(serial) == "revoked"
    server = module.server
    deadline = time.monotonic() + 3  # every process follows revocations every 250 ms
    while True:
        status = openssl(
            *("ocsp", "-issuer", str(server.issuing_ca), "-cert", str(certificate), "-url", server.ocsp_url),
            *("-CAfile", str(server.root)),
        ).decode()
        if f"{certificate}: revoked" in status or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert f"{certificate}: revoked" in status, status


GENM = [
    (infotype, protection)
    for infotype in ("caCerts", "rootCaKeyUpdate", "certReqTemplate")
    for protection in ("mac", "tetra")
]


@pytest.mark.parametrize(("infotype", "protection"), GENM, ids=[f"{i}-{p}" for i, p in GENM])
def test_cmp14_genm(module: Module, infotype: str, protection: str) -> None:
    """CMP-14: genm with each infoType OpenSSL 3.0 names; openssl 3.0 only reports which ITAV
    types the genp holds (printing their content came in 3.2), so that is what is checked."""
    log = succeeded(
        module.server.openssl_cmp("-cmd", "genm", *module.identities[protection].options, "-infotype", infotype)
    )
    assert f"genp contains ITAV of type: id-it-{infotype}" in log, log


def test_cmp14_delayed_delivery_after_approval(module: Module, tmp_path: Path) -> None:
    """CMP-14: profile held (approval manual): openssl's ir is answered waiting, openssl polls,
    the operator approves with `tetra requests approve ID`, the next poll gets the certificate."""
    server = module.server
    key, certificate = new_key(tmp_path / "held.key"), tmp_path / "held.pem"
    mac = ("-ref", HELD_REFERENCE, "-secret", f"pass:{module.secrets[HELD_REFERENCE]}")
    command = server.openssl_cmp_command("-cmd", "ir", *mac, *enrol_options(key, "held.example.com"), profile=HELD)
    client = subprocess.Popen(
        [*command, "-certout", str(certificate), "-total_timeout", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not (pending := server.pending_request_ids()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(pending) == 1, pending
        server.cli("requests", "approve", str(pending[0]))
        log, _ = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 0, log
    assert "sending POLLREQ" in log, log
    assert_issued(server, certificate, key)


# (command, protection, failInfo): refusals, openssl's exit status and the failInfo it prints.
REFUSALS = [
    ("ir", "wrong-secret", "badMessageCheck"),  # CMP-02
    ("ir", "unknown-reference", "signerNotTrusted"),  # CMP-02
    ("ir", "stranger", "signerNotTrusted"),  # CMP-04: a certificate chaining to no trust anchor
    ("kur", "mac", "notAuthorized"),  # CMP-10: a kur must be signed by the certificate it updates
    ("kur", "maker", "notAuthorized"),  # CMP-10: a maker's certificate is not Tetra's to update
    ("rr", "maker", "notAuthorized"),  # CMP-11: the maker's device does not own that certificate
]


@pytest.mark.parametrize(("command", "protection", "fail_info"), REFUSALS, ids=[f"{c}-{p}" for c, p, _ in REFUSALS])
def test_cmp14_refused(module: Module, tmp_path: Path, command: str, protection: str, fail_info: str) -> None:
    """CMP-14 refusal rows: openssl exits non-zero, prints the failInfo, and nothing is issued.
    Tetra cannot protect its answer to a request it could not authenticate; openssl accepts such
    an unprotected error only with -unprotected_errors."""
    identity = module.identities[protection]
    key = new_key(tmp_path / "new.key")
    if command == "ir":
        request: tuple[str, ...] = (*enrol_options(key, "refused.example.com"), "-certout", str(tmp_path / "c.pem"))
    elif command == "kur":
        old = identity.certificate or enrol_by_mac(module, tmp_path, f"kur-{protection}.example.com")[0]
        request = ("-oldcert", str(old), "-newkey", str(key), "-certout", str(tmp_path / "c.pem"))
    else:
        request = ("-oldcert", str(enrol_by_mac(module, tmp_path, f"rr-{protection}.example.com")[0]))
    before = module.server.certificate_count()
    refused(module.server.openssl_cmp("-cmd", command, "-unprotected_errors", *identity.options, *request), fail_info)
    assert module.server.certificate_count() == before


def guide_blocks() -> list[Block]:
    """The `sh` blocks of the section "Using openssl cmp" (up to the next `## ` heading)."""
    lines = GUIDE.read_text().splitlines()
    start = lines.index("## Using openssl cmp") + 1
    end = next((n for n in range(start, len(lines)) if lines[n].startswith("## ")), len(lines))
    return [b for b in blocks(GUIDE) if b.language == "sh" and start < b.line <= end]


def test_cmp14_the_guide_runs_as_written(module: Module, tmp_path: Path) -> None:
    """CMP-14: every `sh` block of docs/cmp.md "Using openssl cmp", in order, in one shell, from a
    directory whose var/ is this module's CA, with the guide's 127.0.0.1:8080 swapped for this
    server; the revoked certificate is revoked in OCSP."""
    (tmp_path / "var").symlink_to(module.server.directory)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tetra").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m server.cli "$@"\n')
    (bin_dir / "tetra").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETRA_")}
    shell = ShellSession(tmp_path, {**env, "PATH": f"{bin_dir}:{env['PATH']}"})
    guide = guide_blocks()
    assert len(guide) >= 6, "docs/cmp.md lost its openssl cmp commands"
    printed = [shell.run_ok(block.text.replace(GUIDE_SERVER, module.server.server), timeout=60) for block in guide]
    assert "device-1c.pem: revoked" in printed[-1], printed[-1]
    assert "genp contains ITAV of type: id-it-caCerts" in "".join(printed)
    for name in ("device-1", "device-1b", "device-1c", "device-2"):
        assert_issued(module.server, tmp_path / f"{name}.pem", tmp_path / f"{name}.key")
