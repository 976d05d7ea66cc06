"""libest's `estclient` (Cisco's reference EST client) against a real `tetra serve` (EST-20, EST-21).

`make clients` builds it from source into TETRA_CLIENTS_DIR (default ~/.cache/tetra/clients).
Every operation: cacerts (-g), simpleenroll (-e) with HTTP Basic (-u/-h) and with a client
certificate (-c/-k), simplereenroll (-r), serverkeygen (-q), csrattrs (-a), with PoP linking
(-z: tls-unique in challengePassword) and without. Each issued certificate chains to the
root (`openssl verify`), carries the requested name and the client's key (or the one the server
generated and returned), and passes pkilint.

What this libest build cannot do, and how the tests get around it:
- `--path-seg` (labels) needs libest built with uriparser, which the client build leaves out
  ("Use of path segments not supported in this build of libEST"). So each profile under test
  is the *unlabelled* path of its own `tetra serve` (interop/est_server.py's, with
  TETRA_EST__DEFAULT_PROFILE); labels are covered with curl in tests/integration/test_est_flow.py.
- estclient refuses a server-generated private key shorter than 256 bytes
  (EST_MIN_CLIENT_PKEY_LEN: "Malformed payload; data too short"), which every P-256 PKCS#8 is;
  serverkeygen is therefore asked with an RSA CSR key, so Tetra generates RSA-2048.
- estclient exits 0 when an operation fails; success is the file it writes.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from interop.conftest import built_client
from interop.est_server import EstTetra, start_est_tetra
from tests.integration.est_support import PASSWORD, USER, openssl, write_pem
from tests.pkilint_check import assert_certificate_lints_clean

CHALLENGE_PASSWORD_OID = "1.2.840.113549.1.9.7"


@pytest.fixture(scope="module")
def estclient_bin() -> Path:
    return built_client("estclient")


@contextmanager
def serving(workdir: Path, default_profile: str = "") -> Iterator[EstTetra]:
    """interop/est_server.py's `tetra serve` (fresh CA, EST test profiles, user alice) whose
    unlabelled EST path selects `default_profile` (estclient here cannot send a label)."""
    with pytest.MonkeyPatch.context() as env:
        if default_profile:
            env.setenv("TETRA_EST__DEFAULT_PROFILE", default_profile)
        server = start_est_tetra(workdir)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def est(tmp_path: Path) -> Iterator[EstTetra]:
    """No label: profile `device`."""
    with serving(tmp_path / "server") as server:
        yield server


class EstClient:
    def __init__(self, binary: Path, server: EstTetra, out: Path) -> None:
        self.binary, self.server, self.out = binary, server, out
        out.mkdir(parents=True, exist_ok=True)

    def run(self, *args: str) -> str:
        """estclient against the server (trust anchor: Tetra's root); its output."""
        command = [
            str(self.binary),
            *args,
            "-s",
            self.server.host,
            "-p",
            str(self.server.https_port),
            "-o",
            str(self.out),
        ]
        env = {**os.environ, "EST_OPENSSL_CACERT": str(self.server.root)}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        return done.stdout + done.stderr

    def expect(self, name: str, *args: str) -> Path:
        """Run; the file estclient writes on success (it exits 0 either way)."""
        output = self.run(*args)
        path = self.out / name
        assert path.exists(), f"estclient {' '.join(args)} wrote no {name}:\n{output[-3000:]}"
        return path


def p256_key(path: Path) -> Path:
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
    return path


def spki(key: x509.Certificate | Path) -> bytes:
    """The SubjectPublicKeyInfo of a certificate, or of a PEM private key file."""
    der, info = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if isinstance(key, x509.Certificate):
        return key.public_key().public_bytes(der, info)
    return serialization.load_pem_private_key(key.read_bytes(), None).public_key().public_bytes(der, info)


def issued_count(server: EstTetra) -> int:
    return len(json.loads(server.cli("certs", "list", "--format", "json")))


def check_issued(server: EstTetra, pem: Path, key: Path, common_name: str) -> x509.Certificate:
    """Chains to the root (`openssl verify`), names what was asked, holds the client's key, lints clean."""
    cert = x509.load_pem_x509_certificate(pem.read_bytes())
    out = openssl("verify", "-CAfile", str(server.root), "-untrusted", str(server.issuing_ca), str(pem))
    assert out.strip().endswith(b": OK"), out
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == common_name
    assert spki(cert) == spki(key)
    assert_certificate_lints_clean(cert.public_bytes(serialization.Encoding.DER))
    return cert


def base64_file(path: Path) -> bytes:
    """What estclient saves as received: base64, possibly with CRLF line breaks."""
    return base64.b64decode(b"".join(path.read_bytes().split()))


def basic() -> tuple[str, str, str, str]:
    return ("-u", USER, "-h", PASSWORD)


def test_cacerts_and_csrattrs(estclient_bin: Path, est: EstTetra, tmp_path: Path) -> None:
    """EST-01, EST-20: -g fetches the certs-only chain without authentication: the issuing CA and
    the root. -a fetches the profile's CSR attributes; without PoP linking required they do not
    ask for challengePassword."""
    client = EstClient(estclient_bin, est, tmp_path / "out")
    received = set(pkcs7.load_der_pkcs7_certificates(base64_file(client.expect("cacert-0-0.pkcs7", "-g"))))
    for pem in (est.issuing_ca, est.root):
        assert x509.load_pem_x509_certificate(pem.read_bytes()) in received
    attrs = openssl("asn1parse", "-inform", "DER", data=base64_file(client.expect("csr-0-0.base64", "-a"))).decode()
    assert "id-ecPublicKey" in attrs, attrs
    assert CHALLENGE_PASSWORD_OID not in attrs and "challengePassword" not in attrs, attrs


def test_simpleenroll_basic_then_client_certificate_then_reenroll(
    estclient_bin: Path, est: EstTetra, tmp_path: Path
) -> None:
    """EST-20: -e with HTTP Basic, then -e authenticated by that certificate (-c/-k) for a
    second key of the same device (a certificate vouches for its own names only), then -r
    renewing the first certificate: same subject and key, new serial."""
    first_key = p256_key(tmp_path / "first.key")
    client = EstClient(estclient_bin, est, tmp_path / "basic")
    pem = client.expect(
        "cert-0-0.pem", "-e", *basic(), "-x", str(first_key), "--common-name", "dev1.example.com", "--pem-output"
    )
    first = check_issued(est, pem, first_key, "dev1.example.com")

    second_key = p256_key(tmp_path / "second.key")
    by_cert = EstClient(estclient_bin, est, tmp_path / "mtls")
    pem = by_cert.expect(
        "cert-0-0.pem", "-e", "-c", str(pem), "-k", str(first_key), "-x", str(second_key),
        "--common-name", "dev1.example.com", "--pem-output",
    )  # fmt: skip
    check_issued(est, pem, second_key, "dev1.example.com")

    first_pem = write_pem(tmp_path / "first.pem", first)
    renewer = EstClient(estclient_bin, est, tmp_path / "renew")
    pem = renewer.expect("cert-0-0.pem", "-r", "-c", str(first_pem), "-k", str(first_key), "--pem-output")
    renewed = check_issued(est, pem, first_key, "dev1.example.com")
    assert renewed.subject == first.subject
    assert renewed.serial_number != first.serial_number


def test_serverkeygen_returns_the_key_of_the_certificate(estclient_bin: Path, tmp_path: Path) -> None:
    """EST-13, EST-20: -q under a profile with server-generated keys: the returned PKCS#8 key is
    the certificate's (RSA: estclient refuses keys under 256 bytes, see the module docstring)."""
    csr_key = tmp_path / "csr-rsa.key"
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(csr_key))
    with serving(tmp_path / "server", "keygen") as server:
        client = EstClient(estclient_bin, server, tmp_path / "out")
        key_file = client.expect(
            "key-0-0.key", "-q", *basic(), "-x", str(csr_key), "--common-name", "gen.example.com", "--pem-output"
        )
        returned = serialization.load_der_private_key(base64_file(key_file), None)
        key_pem = tmp_path / "returned.key"
        key_pem.write_bytes(
            returned.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        cert = check_issued(server, tmp_path / "out" / "cert-0-0.pem", key_pem, "gen.example.com")
    assert spki(cert) != spki(csr_key)  # the server's key, not the one that signed the CSR


def test_pop_linking_on_and_off(estclient_bin: Path, tmp_path: Path) -> None:
    """EST-08, EST-20: under a profile requiring PoP linking, -a lists challengePassword; -e -z
    (tls-unique in challengePassword, over the TLS 1.2 estclient speaks) is issued; -e without -z
    is refused with 400 and nothing is stored."""
    key = p256_key(tmp_path / "pop.key")
    with serving(tmp_path / "server", "pop") as server:
        client = EstClient(estclient_bin, server, tmp_path / "pop")
        attrs = base64_file(client.expect("csr-0-0.base64", "-a"))
        assert "challengePassword" in openssl("asn1parse", "-inform", "DER", data=attrs).decode()

        pem = client.expect(
            "cert-0-0.pem", "-e", "-z", *basic(), "-x", str(key), "--common-name", "pop.example.com", "--pem-output"
        )
        check_issued(server, pem, key, "pop.example.com")

        before = issued_count(server)
        refused = EstClient(estclient_bin, server, tmp_path / "nopop")
        output = refused.run("-e", *basic(), "-x", str(key), "--common-name", "nopop.example.com", "-v")
        assert not list((tmp_path / "nopop").glob("cert-*"))
        assert "HTTP status 400 received" in output, output[-3000:]
        assert issued_count(server) == before


def test_idevid_bootstrap(estclient_bin: Path, tmp_path: Path) -> None:
    """EST-21: a device maker's certificate (not Tetra's) authorises the first -e under the
    profile that trusts its CA; the certificate Tetra issued then renews itself with -r, and
    the factory certificate cannot renew (403)."""
    key = p256_key(tmp_path / "ldevid.key")
    with serving(tmp_path / "server", "factory") as server:
        idevid, idevid_key = server.factory_device("SN-0042")
        client = EstClient(estclient_bin, server, tmp_path / "enroll")
        pem = client.expect(
            "cert-0-0.pem", "-e", "-c", str(idevid), "-k", str(idevid_key), "-x", str(key),
            "--common-name", "sn-0042.devices.example.com", "--pem-output",
        )  # fmt: skip
        issued = check_issued(server, pem, key, "sn-0042.devices.example.com")

        renewer = EstClient(estclient_bin, server, tmp_path / "renew")
        pem = renewer.expect("cert-0-0.pem", "-r", "-c", str(pem), "-k", str(key), "--pem-output")
        renewed = check_issued(server, pem, key, "sn-0042.devices.example.com")
        assert renewed.serial_number != issued.serial_number

        idevid_again = EstClient(estclient_bin, server, tmp_path / "idevid-renew")
        output = idevid_again.run("-r", "-c", str(idevid), "-k", str(idevid_key), "-v")
        assert not list((tmp_path / "idevid-renew").glob("cert-*")), "a factory certificate renewed itself"
        assert "403 Forbidden" in output, output[-3000:]
