"""ACME alternate chains after a root rollover (RFC 8555 §7.4.2), on SQLite and PostgreSQL:
a certificate issued under the old root is also offered through oldWithNew, so a client that
trusts only the new root can use it; the default chain is unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from server.app import CA
from tests.integration.rollover_support import openssl_verify, roll_root_over, until
from tests.unit.protocols.acme.support import start_env

pytest_plugins = ["tests.unit.protocols.acme.support"]


async def test_acme_offers_the_chain_to_the_new_root(
    aiohttp_client: Any, ca_dir: Path, db_url: str, loopback: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CAL-01 (ACME side of a root rollover): before it, one chain; after `ca rollover root`, the
    certificate URL links rel="alternate" to the chain through oldWithNew, which openssl verifies
    with the new root alone, while the default chain still verifies with the old root."""
    monkeypatch.setenv("TETRA_DATABASE__URL", db_url)
    env = await start_env(aiohttp_client, ca_dir, db_url, loopback, {"TETRA_SERVER__PROTOCOLS": '["acme"]'})
    client = env.client()
    await client.load_directory()
    assert (await client.register()).status == 201
    order, _, _ = await client.issue(env, ["rollover.example.com"])
    first = await client.post(order["certificate"], None)
    assert 'rel="alternate"' not in first.headers["Link"]

    new_root, _, old_with_new = await roll_root_over(ca_dir, tmp_path / "root2")
    await until(lambda: "root.2" in env.app[CA].authorities, "the server reads the new root")
    old_root = x509.load_pem_x509_certificate((ca_dir / "ca/root.pem").read_bytes())

    default = await client.post(order["certificate"], None)
    assert f'<{order["certificate"]}/1>;rel="alternate"' in default.headers["Link"]
    assert default.body == first.body
    alternate = await client.post(order["certificate"] + "/1", None)
    leaf, *chain = x509.load_pem_x509_certificates(alternate.body)
    assert chain[-1] == old_with_new and leaf == x509.load_pem_x509_certificates(default.body)[0]
    assert f'<{order["certificate"]}>;rel="alternate"' in alternate.headers["Link"]
    openssl_verify(tmp_path, leaf, [new_root], chain)
    openssl_verify(tmp_path, leaf, [old_root], x509.load_pem_x509_certificates(default.body)[1:])
