"""A real `tetra serve` with SCEP (a held profile), CRL, OCSP and the management listener, two
dashboard users, and Debian's chromium driven by Playwright: one of each per test module.

The browser is the system's (`/usr/bin/chromium`, DEB_PACKAGES in the Makefile), never one
Playwright downloads. Screenshots go to `.artifacts/screenshots/` (git-ignored).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from ca.operators.roles import Role
from server.wiring import build_ca, read_config
from tests.integration.scep_support import ScepServer, prepare_scep_ca

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"
# `tetra init` made "admin" already (its password in secrets/): these are the tests' own.
PASSWORDS = {"ada": "correct horse battery staple", "officer": "officer's long passphrase"}


class DashboardServer(ScepServer):
    """ScepServer (SCEP with the held profile) plus OCSP, and the dashboard on the management
    listener (a free port, TetraProcess; HTTPS with the demo's certificate)."""

    def __init__(self, ca_dir: Path, log: Path) -> None:
        super().__init__(ca_dir, log, {"TETRA_SERVER__PROTOCOLS": '["scep", "crl", "ocsp"]'})
        self.ui = f"https://127.0.0.1:{self.manage_port}/ui/"

    def add_users(self) -> None:
        async def add() -> None:
            ca = await build_ca(read_config(self.config, environ=self.env), open_signers=False)
            try:
                users = ca.operators.users
                await users.add("ada", Role.ADMINISTRATOR, actor="test", password=PASSWORDS["ada"])
                await users.add("officer", Role.RA_OFFICER, actor="test", password=PASSWORDS["officer"])
            finally:
                await ca.close()

        asyncio.run(add())

    def ocsp_status(self, certificate: x509.Certificate) -> ocsp.OCSPCertStatus:
        issuer = self.issuing_ca()
        request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA256()).build()
        reply = self.http(
            "POST", f"{self.base}/ocsp", request.public_bytes(serialization.Encoding.DER), "application/ocsp-request"
        )
        assert reply.status == 200, reply.body
        answer = ocsp.load_der_ocsp_response(reply.body)
        assert answer.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        return answer.certificate_status


def dashboard_server(factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[DashboardServer]:
    tmp = factory.mktemp("dashboard")
    shutil.copytree(template_dir, tmp / "ca")
    prepare_scep_ca(tmp / "ca")
    server = DashboardServer(tmp / "ca", tmp / "serve.log")
    try:
        server.wait_ready()
        server.add_users()
        yield server
    finally:
        server.stop()


def eventually(check: Callable[[], bool], timeout: float = 10) -> bool:
    """Whether ``check`` comes true within ``timeout`` seconds (asked again every 0.1 s): for
    state another process's job publishes (the OCSP answer after a revocation)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
