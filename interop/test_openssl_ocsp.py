"""`openssl ocsp` and `openssl verify -crl_check_all` against a running `tetra serve`.

OCSP by POST (`openssl ocsp -url`) and by GET (openssl has no GET switch: the request it
writes with -reqout is sent as nginx sends it, HTTP/1.0 with the percent-escaped base64 in
the path, by curl; openssl then checks the answer with -respin and -reqin, nonce included),
with and without a nonce, for a good, a revoked and a never-issued serial. The revocation
is made by `tetra revoke`, another process, and must show in OCSP within a second.
"""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from ca.lint import format_findings, has_errors, lint_crl, lint_ocsp_response
from ca.signers.software import load_encrypted_key
from interop.conftest import RevocationServer, need
from tests.helpers import make_csr


def _run(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(list(args), input=input, capture_output=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout.decode()}\n{result.stderr.decode()}"
        )
    return result


@pytest.fixture(scope="module")
def certs(revocation_server: RevocationServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A good and a revoked certificate, issued by the server (its certificates name their CRL
    partition and delta); the second is revoked with `tetra revoke`, another process."""
    out = tmp_path_factory.mktemp("certs")
    paths = {}
    for name in ("good", "revoked"):
        csr, _ = make_csr([f"{name}.example.com"])
        (out / f"{name}.chain.pem").write_bytes(revocation_server.enroll(csr.public_bytes(serialization.Encoding.PEM)))
        leaf = x509.load_pem_x509_certificates((out / f"{name}.chain.pem").read_bytes())[0]
        (out / f"{name}.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
        paths[name] = out / f"{name}.pem"
    return paths


def _serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def _ocsp_post_status(server: RevocationServer, cert: Path) -> ocsp.OCSPCertStatus:
    leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    issuer = x509.load_pem_x509_certificate(server.issuer.read_bytes())
    der = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(leaf, issuer, hashes.SHA1())
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    request = urllib.request.Request(
        f"{server.base}/ocsp", data=der, headers={"Content-Type": "application/ocsp-request"}
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        return ocsp.load_der_ocsp_response(resp.read()).certificate_status


def _openssl_ocsp(
    server: RevocationServer, target: list[str], nonce: bool, extra: list[str], *, request_file: bool = False
) -> str:
    """Run `openssl ocsp` and require a verified response (and a matching nonce if asked).
    With -reqin, -nonce would add a second nonce to the loaded request: -no_nonce keeps it as
    it was sent, and openssl still compares its nonce with the response's."""
    openssl = need("openssl")
    flag = "-nonce" if nonce and not request_file else "-no_nonce"
    result = _run(
        openssl,
        "ocsp",
        "-issuer",
        str(server.issuer),
        *target,
        "-CAfile",
        str(server.root),
        "-verify_other",
        str(server.issuer),
        flag,
        *extra,
    )
    text = (result.stdout + result.stderr).decode()
    assert "Response verify OK" in text, text
    if nonce:
        assert "WARNING: no nonce in response" not in text and "Nonce Verify error" not in text, text
    return text


@pytest.mark.parametrize("nonce", [False, True], ids=["no-nonce", "nonce"])
def test_openssl_ocsp_by_post(revocation_server: RevocationServer, certs: dict[str, Path], nonce: bool) -> None:
    """good / revoked (time and reason) / unknown for a serial never issued, over POST."""
    url = ["-url", f"{revocation_server.base}/ocsp"]
    good = _openssl_ocsp(revocation_server, ["-cert", str(certs["good"])], nonce, url)
    assert f"{certs['good']}: good" in good
    _revoke_once(revocation_server, certs)
    revoked = _openssl_ocsp(revocation_server, ["-cert", str(certs["revoked"])], nonce, url)
    assert f"{certs['revoked']}: revoked" in revoked and "Reason: keyCompromise" in revoked
    never = _openssl_ocsp(revocation_server, ["-serial", "0x1234567890ABCDEF0123"], nonce, url)
    assert "0x1234567890ABCDEF0123: unknown" in never


_REVOKED: dict[str, float] = {}


def _revoke_once(server: RevocationServer, certs: dict[str, Path]) -> None:
    """`tetra revoke` (its own process); OCSP must say revoked within a second of it returning."""
    if "latency" in _REVOKED:
        return
    assert _ocsp_post_status(server, certs["revoked"]) == ocsp.OCSPCertStatus.GOOD
    server.cli("revoke", format(_serial(certs["revoked"]), "x"), "--reason", "keyCompromise")
    returned = time.monotonic()
    while _ocsp_post_status(server, certs["revoked"]) != ocsp.OCSPCertStatus.REVOKED:
        assert time.monotonic() - returned < 1.0, "revocation not visible in OCSP within a second"
        time.sleep(0.02)
    _REVOKED["latency"] = time.monotonic() - returned


@pytest.mark.parametrize("nonce", [False, True], ids=["no-nonce", "nonce"])
def test_openssl_ocsp_by_get(
    revocation_server: RevocationServer, certs: dict[str, Path], tmp_path: Path, nonce: bool
) -> None:
    """GET as nginx stapling sends it (HTTP/1.0, percent-escaped standard base64, one SHA-1
    CertID): HTTP 200, exactly Content-Type application/ocsp-response; openssl verifies the
    answer against its own request (nonce checked) for good, revoked and unknown."""
    curl = need("curl")
    openssl = need("openssl")
    _revoke_once(revocation_server, certs)
    cases = [
        (["-cert", str(certs["good"])], "good"),
        (["-cert", str(certs["revoked"])], "revoked"),
        (["-serial", "0x7777777777777777"], "unknown"),
    ]
    for index, (target, expected) in enumerate(cases):
        req, resp = tmp_path / f"req{index}.der", tmp_path / f"resp{index}.der"
        _run(
            openssl,
            "ocsp",
            "-issuer",
            str(revocation_server.issuer),
            *target,
            "-nonce" if nonce else "-no_nonce",
            "-reqout",
            str(req),
        )
        path = quote(base64.b64encode(req.read_bytes()).decode(), safe="")
        result = _run(
            curl,
            "--silent",
            "--http1.0",
            "--dump-header",
            "-",
            "--output",
            str(resp),
            f"{revocation_server.base}/ocsp/{path}",
        )
        headers = result.stdout.decode().lower()
        assert headers.startswith("http/1.") and " 200 " in headers.splitlines()[0], headers
        assert "\r\ncontent-type: application/ocsp-response\r\n" in headers, headers
        if not nonce and expected != "unknown":  # 'unknown' may change soon: never HTTP-cached
            assert "max-age=" in headers and "etag:" in headers and "last-modified:" in headers, headers
        text = _openssl_ocsp(
            revocation_server, target, nonce, ["-reqin", str(req), "-respin", str(resp)], request_file=True
        )
        assert f": {expected}" in text, text
        findings = lint_ocsp_response(resp.read_bytes(), errors_only=False)
        assert not has_errors(findings), format_findings(findings)


def _root_crl(server: RevocationServer, out: Path) -> Path:
    """The offline root's CRL for the issuing CA (-crl_check_all checks every level)."""
    passphrase = (server.directory / "secrets" / "passphrase").read_bytes().rstrip(b"\n")
    key = load_encrypted_key(server.directory / "keys" / "root.key", passphrase)
    root = x509.load_pem_x509_certificate(server.root.read_bytes())
    now = dt.datetime.now(dt.UTC)
    ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(root.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=7))
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False)
        .add_extension(x509.CRLNumber(1), False)
        .sign(key, hashes.SHA256())
    )
    path = out / "root.crl.pem"
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        assert resp.headers["Content-Type"] == "application/pkix-crl"
        return bytes(resp.read())


def test_openssl_verify_crl_check_all(
    revocation_server: RevocationServer, certs: dict[str, Path], tmp_path: Path
) -> None:
    """The CRLs a certificate points to (its partition, the full CRL, the delta) are fetched
    from the server and used by `openssl verify -crl_check_all`: the good certificate
    verifies, the revoked one is refused as revoked. Every CRL lints clean."""
    openssl = need("openssl")
    _revoke_once(revocation_server, certs)
    revoked_serial = _serial(certs["revoked"])
    leaf = x509.load_pem_x509_certificate(certs["revoked"].read_bytes())
    delta_url = str(leaf.extensions.get_extension_for_class(x509.FreshestCRL).value[0].full_name[0].value)
    deadline = time.monotonic() + 10
    while True:  # the delta of the certificate's partition, within the batching delay (1 s here)
        delta = x509.load_der_x509_crl(_fetch(delta_url))
        if delta.get_revoked_certificate_by_serial_number(revoked_serial) is not None:
            break
        assert time.monotonic() < deadline, "revocation never reached the delta CRL"
        time.sleep(0.2)
    out = revocation_server.cli("crl", "generate", "--ca", "issuing-ca")  # complete CRLs now, from the CLI
    assert "complete CRL full number" in out and "delta CRL part-1" in out, out
    time.sleep(1.1)  # the server re-reads the newest CRL from the store at most once a second
    full = x509.load_der_x509_crl(_fetch(f"{revocation_server.base}/crl/issuing-ca.crl"))
    assert full.get_revoked_certificate_by_serial_number(revoked_serial) is not None
    root_crl = _root_crl(revocation_server, tmp_path)
    for name in ("good", "revoked"):
        leaf = x509.load_pem_x509_certificate(certs[name].read_bytes())
        cdp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        fresh = leaf.extensions.get_extension_for_class(x509.FreshestCRL).value
        crl_files = []
        for index, point in enumerate([cdp[0], fresh[0]]):
            url = str(point.full_name[0].value)
            der = _fetch(url)
            findings = lint_crl(der, profile="pkix", errors_only=False)
            assert not has_errors(findings), format_findings(findings)
            path = tmp_path / f"{name}-{index}.crl.pem"
            path.write_bytes(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
            crl_files += ["-CRLfile", str(path)]
        result = _run(
            openssl,
            "verify",
            "-crl_check_all",
            "-use_deltas",
            "-CAfile",
            str(revocation_server.root),
            "-untrusted",
            str(revocation_server.issuer),
            *crl_files,
            "-CRLfile",
            str(root_crl),
            str(certs[name]),
            check=False,
        )
        output = (result.stdout + result.stderr).decode()
        if name == "good":
            assert result.returncode == 0 and ": OK" in output, output
        else:
            assert result.returncode != 0 and "certificate revoked" in output, output
    full_findings = lint_crl(_fetch(f"{revocation_server.base}/crl/issuing-ca.crl"), profile="cabf", errors_only=False)
    assert not has_errors(full_findings), format_findings(full_findings)
