"""OCSP-15: the demo's OCSP responder key is a file, so restarting `tetra serve` reuses
the responder certificate it already has instead of issuing one more at every start."""

from __future__ import annotations

import sqlite3
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.x509 import ocsp

from tests.integration.serverproc import ServerProcess
from tests.revocation_support import check_ocsp, request_der


def _responder_certificates(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM certificates WHERE requester = 'tetra-ocsp'").fetchone()[0])


def test_a_restart_reuses_the_responder_certificate(ca_dir: Path, tmp_path: Path) -> None:
    ra = x509.load_pem_x509_certificate((ca_dir / "ra" / "ra.pem").read_bytes())
    issuer = x509.load_pem_x509_certificate((ca_dir / "ca" / "issuing-ca.pem").read_bytes())
    der = request_der(ra, issuer)
    signers = []
    for start in range(3):
        server = ServerProcess(
            ca_dir / "tetra.toml",
            f"sqlite:///{ca_dir / 'tetra.db'}",
            tmp_path / f"serve-{start}.log",
            {"TETRA_SERVER__PROTOCOLS": '["ocsp"]', "TETRA_OCSP__RESPONDER_COUNTRY": "US"},
        )
        try:
            server.wait_ready()
            post = urllib.request.Request(
                f"{server.base}/ocsp", data=der, headers={"Content-Type": "application/ocsp-request"}
            )
            with urllib.request.urlopen(post, timeout=10) as reply:
                answer = check_ocsp(reply.read(), issuer)
            assert answer.certificate_status == ocsp.OCSPCertStatus.GOOD
            signers.append(answer.certificates[0].serial_number)
        finally:
            server.stop()
    assert len(set(signers)) == 1, signers  # the same responder certificate answered every time
    assert _responder_certificates(ca_dir / "tetra.db") == 1
