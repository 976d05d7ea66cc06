"""The EST interop fixture serves EST: a Basic user, a `tetra issue`d client certificate and a
factory IDevID each enroll through it (curl), so client interop tests can rely on them."""

from __future__ import annotations

import subprocess

from interop.est_server import EstTetra, est_tetra  # noqa: F401  (the fixture)
from tests.integration.est_support import openssl


def _enroll(server: EstTetra, label: str, *auth: str) -> int:
    key, csr = server.directory / "e.key", server.directory / "e.b64"
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    der = openssl("req", "-new", "-key", str(key), "-subj", "/CN=e.example.com", "-outform", "DER")
    csr.write_bytes(openssl("base64", data=der))
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(server.root),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            *auth,
            "--data-binary",
            f"@{csr}",
            "-H",
            "Content-Type: application/pkcs10",
            f"{server.url(label)}/simpleenroll",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return int(result.stdout)


def test_the_fixture_enrolls_with_each_kind_of_client(est_tetra: EstTetra) -> None:  # noqa: F811
    password = est_tetra.add_user("bob", label="iot")
    assert _enroll(est_tetra, "iot", "-u", f"bob:{password}") == 200
    cert, key = est_tetra.client_certificate("client.example.com")
    assert _enroll(est_tetra, "", "--cert", str(cert), "--key", str(key)) == 200
    idevid, idevid_key = est_tetra.factory_device("SN-7")
    assert _enroll(est_tetra, "factory", "--cert", str(idevid), "--key", str(idevid_key)) == 200
