"""Rolling the issuing CA over while ACME clients issue at concurrency 8 (CAL-01).

The app runs in this process with ACME, OCSP and CRL; `tetra ca rollover` and `tetra ca
activate` run as separate commands on the same store, as an operator would run them. The
server learns of the new generation from the registry (server/jobs.py registry_tick) and
changes over when it is activated, with no restart and no failed request.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from server.app import CA
from tests.integration.rollover_support import parent_key, until
from tests.pkilint_check import assert_certificate_lints_clean
from tests.revocation_support import request_der
from tests.unit.protocols.acme.support import start_env

pytest_plugins = ["tests.unit.protocols.acme.support"]

WORKERS = 8
SERVED = {"TETRA_SERVER__PROTOCOLS": '["acme", "ocsp", "crl"]'}


def tetra(ca_dir: Path, db_url: str, *args: str) -> str:
    """A `tetra` command on the test's CA directory and store, in its own process."""
    env = {**os.environ, "TETRA_DATABASE__URL": db_url, "PYTHONPATH": str(Path(__file__).parents[2])}
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", *args, "--config", "tetra.toml"],
        cwd=ca_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_rollover_and_activation_under_acme_load(
    aiohttp_client: Any, ca_dir: Path, db_url: str, loopback: Any
) -> None:
    """CAL-01: no request fails; certificates from before and after chain to what is published;
    OCSP answers for both generations."""
    env = await start_env(aiohttp_client, ca_dir, db_url, loopback, SERVED)
    issued: list[list[x509.Certificate]] = []
    errors: list[str] = []
    stop = asyncio.Event()

    async def client_loop(w: int) -> None:
        client = env.client()
        await client.load_directory()
        resp = await client.register()
        assert resp.status == 201, resp.body
        n = 0
        while not stop.is_set():
            try:
                _, pem, _ = await client.issue(env, [f"w{w}-{n}.example.com"])
                issued.append(x509.load_pem_x509_certificates(pem.encode()))
            except AssertionError as exc:
                errors.append(str(exc)[:300])
            n += 1

    workers = [asyncio.create_task(client_loop(w)) for w in range(WORKERS)]
    try:
        while len(issued) < 8:
            await asyncio.sleep(0.1)
        await asyncio.to_thread(tetra, ca_dir, db_url, "ca", "rollover", "issuing-ca", "--new-key", *parent_key(ca_dir))
        await until(lambda: "issuing-ca.2" in env.app[CA].issuers, "the server loads issuing-ca.2")
        before = len(issued)
        await asyncio.to_thread(tetra, ca_dir, db_url, "ca", "activate", "issuing-ca.2", "--at", "now")
        new_ca = env.app[CA].issuers["issuing-ca.2"].certificate
        while sum(1 for chain in issued if chain[1] == new_ca) < 8:
            await asyncio.sleep(0.1)
        assert len(issued) > before
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
    assert errors == []
    ca = env.app[CA]
    old_ca = ca.issuers["issuing-ca"].certificate
    root = ca.roots[0]
    published = x509.load_pem_x509_certificates(await (await env.http.get("/intermediates.pem")).read())
    assert old_ca in published and new_ca in published
    by_generation = {old_ca: [c for c in issued if c[1] == old_ca], new_ca: [c for c in issued if c[1] == new_ca]}
    assert all(by_generation.values()), "certificates from both generations"
    for ca_cert, chains in by_generation.items():
        ca_cert.verify_directly_issued_by(root)
        for chain in chains:
            chain[0].verify_directly_issued_by(ca_cert)
        leaf = chains[-1][0]
        assert_certificate_lints_clean(leaf.public_bytes(Encoding.DER), "cabf-serverauth")
        resp = await env.http.post(
            "/ocsp", data=request_der(leaf, ca_cert), headers={"Content-Type": "application/ocsp-request"}
        )
        answer = ocsp.load_der_ocsp_response(await resp.read())
        assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
        assert answer.certificate_status is ocsp.OCSPCertStatus.GOOD
        assert answer.serial_number == leaf.serial_number
    assert_certificate_lints_clean(new_ca.public_bytes(Encoding.DER))
