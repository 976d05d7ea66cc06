"""`tetra ca rollover` and `tetra ca activate` against a running server in this process, on
SQLite and PostgreSQL: the demo issuing CA rolled over with the same key and with a new one,
then the demo root; what each protocol announces before and after; and every refusal.

The commands run as an operator runs them (server/cli, in a thread, on the same store); the
server learns of each change from the registry within a second (server/jobs.py registry_tick).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from protocols.cmp.der import explicit
from server.app import CA
from server.wiring import build_ca
from tests.integration.rollover_support import (
    enroll,
    est_cacerts,
    get,
    ocsp_status,
    openssl_verify,
    parent_key,
    roll_root_over,
    root_ca_key_update,
    scep_next_ca,
    server_config,
    start,
    tetra_ok,
    until,
)
from tests.pkilint_check import assert_certificate_lints_clean
from tests.revocation_support import check_crl

GOOD = ocsp.OCSPCertStatus.GOOD


@pytest.fixture(autouse=True)
def environment(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' store is the server's."""
    monkeypatch.setenv("TETRA_DATABASE__URL", db_url)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


@pytest.mark.parametrize("key", ["--same-key", "--new-key"])
async def test_issuing_ca_rollover_then_activation(
    aiohttp_client: Any, ca_dir: Path, db_url: str, key: str, tmp_path: Path
) -> None:
    """CAL-01 (one request at a time; the concurrent run is test_ca_rollover_load.py): the staged
    generation is published and announced (SCEP GetNextCACert, EST cacerts, /intermediates.pem,
    /ca/issuing-ca.2.cer) but issues nothing; after `activate` the next leaf is signed by it;
    leaves from before and after verify with openssl against the root and what is published,
    OCSP answers good for both, both generations' CRLs are published and verify."""
    client, auth = await start(aiohttp_client, ca_dir, db_url)
    ca = client.app[CA]
    root = x509.load_pem_x509_certificate((ca_dir / "ca/root.pem").read_bytes())
    old_leaf, old_ca = await enroll(client, auth, "before.example.com")

    out = await tetra_ok(ca_dir, "ca", "rollover", "issuing-ca", key, *parent_key(ca_dir))
    assert "staged issuing-ca.2" in out
    assert (ca_dir / "keys/issuing-ca.2.key").exists() is (key == "--new-key")
    await until(lambda: "issuing-ca.2" in ca.authorities, "the server reads the new generation")
    new_ca = ca.authorities["issuing-ca.2"].certificate
    assert new_ca != old_ca and new_ca.subject == old_ca.subject
    assert (new_ca.public_key() == old_ca.public_key()) is (key == "--same-key")
    new_ca.verify_directly_issued_by(root)
    assert_certificate_lints_clean(_der(new_ca))

    # Staged: announced and published, not issuing.
    assert new_ca in await scep_next_ca(client)
    assert new_ca in await est_cacerts(client)
    assert {old_ca, new_ca} <= set(x509.load_pem_x509_certificates(await get(client, "/intermediates.pem")))
    assert x509.load_der_x509_certificate(await get(client, "/ca/issuing-ca.2.cer")) == new_ca
    _, still_old = await enroll(client, auth, "staged.example.com")
    assert still_old == old_ca

    await tetra_ok(ca_dir, "ca", "activate", "issuing-ca.2", "--at", "now")
    await until(lambda: ca.current_issuer("issuing-ca").certificate == new_ca, "the server changes over")
    new_leaf, signer = await enroll(client, auth, "after.example.com")
    assert signer == new_ca
    new_leaf.verify_directly_issued_by(new_ca)
    assert new_ca not in await scep_next_ca(client)  # nothing is next any more

    published = x509.load_pem_x509_certificates(await get(client, "/intermediates.pem"))
    for leaf, issuer in ((old_leaf, old_ca), (new_leaf, new_ca)):
        openssl_verify(tmp_path, leaf, [root], published)
        assert await ocsp_status(client, leaf, issuer) == GOOD
        assert_certificate_lints_clean(_der(leaf), "cabf-serverauth")

    # Each issuer's CRL (a same-key generation is the same issuer: one CRL covers both).
    issuers = {"issuing-ca": old_ca, "issuing-ca.2": new_ca} if key == "--new-key" else {"issuing-ca": new_ca}
    for name, cert in issuers.items():
        check_crl(await _crl(client, name), cert)

    # A CA built afresh from the config (as every command and a restarted server is) issues under it.
    fresh = await build_ca(server_config(ca_dir, db_url))
    try:
        expected = "issuing-ca.2" if key == "--new-key" else "issuing-ca"
        assert fresh.current_issuer("issuing-ca").name == expected
        assert fresh.current_issuer("issuing-ca").certificate == new_ca
    finally:
        await fresh.close()


async def _crl(client: Any, name: str) -> bytes:
    """The issuer's complete CRL; a new generation's first one is signed within a second or two."""
    for _ in range(50):
        resp = await client.get(f"/crl/{name}.crl")
        if resp.status == 200:
            return bytes(await resp.read())
        await asyncio.sleep(0.2)
    raise AssertionError(f"/crl/{name}.crl never served")


async def test_root_rollover_links_and_announcements(
    aiohttp_client: Any, ca_dir: Path, db_url: str, tmp_path: Path
) -> None:
    """CAL-01 for a root: `ca rollover root --new-key` writes newWithNew, newWithOld and oldWithNew
    (RFC 4210 §4.4), each verifies with the key that should have signed it and passes pkilint; CMP
    genm rootCaKeyUpdate answers them, EST cacerts carries them, ACME offers the chain through
    oldWithNew. An issuing CA rolled over under the activated new root reaches the old root
    through newWithOld, and leaves of both verify from either root."""
    client, auth = await start(aiohttp_client, ca_dir, db_url)
    ca = client.app[CA]
    old_root = x509.load_pem_x509_certificate((ca_dir / "ca/root.pem").read_bytes())
    old_leaf, old_ca = await enroll(client, auth, "old-root.example.com")
    assert await root_ca_key_update(client) is None  # no rollover yet: "no update"

    out_dir = tmp_path / "root2"
    nwn, nwo, own = await roll_root_over(ca_dir, out_dir)
    nwn.verify_directly_issued_by(nwn)
    nwo.verify_directly_issued_by(old_root)
    own.verify_directly_issued_by(nwn)
    assert nwo.public_key() == nwn.public_key() and own.public_key() == old_root.public_key()
    assert nwn.subject == old_root.subject
    for cert in (nwn, nwo, own):
        assert_certificate_lints_clean(_der(cert))
    await until(lambda: "root.2" in ca.authorities, "the server reads the new root")

    update = (_der(nwn), explicit(0, _der(nwo)), explicit(1, _der(own)))
    assert await root_ca_key_update(client) == update
    assert await root_ca_key_update(client, old_root) == update  # RFC 9483: rootCaCert names the old root
    assert await root_ca_key_update(client, nwn) is None  # a client already on the new root
    assert {nwn, nwo, own, old_root, old_ca} <= set(await est_cacerts(client))
    assert ca.alternate_chains("issuing-ca") == [(old_ca, own)]
    # A client that trusts only the new root verifies an old leaf through oldWithNew.
    openssl_verify(tmp_path, old_leaf, [nwn], [old_ca, own])
    openssl_verify(tmp_path, old_leaf, [old_root], [old_ca])

    # The new root certifies the next issuing CA once it is active.
    await tetra_ok(ca_dir, "ca", "activate", "root.2")
    await tetra_ok(
        ca_dir, "ca", "rollover", "issuing-ca", "--new-key", *parent_key(ca_dir, str(out_dir / "root.2.key"))
    )
    await until(lambda: "issuing-ca.2" in ca.issuers, "the server loads issuing-ca.2")
    await tetra_ok(ca_dir, "ca", "activate", "issuing-ca.2")
    new_ca = ca.issuers["issuing-ca.2"].certificate
    await until(lambda: ca.current_issuer("issuing-ca").name == "issuing-ca.2", "the server changes over")
    new_leaf, signer = await enroll(client, auth, "new-root.example.com")
    assert signer == new_ca
    new_ca.verify_directly_issued_by(nwn)
    assert ca.alternate_chains("issuing-ca.2") == [(new_ca, nwo)]
    openssl_verify(tmp_path, new_leaf, [nwn], [new_ca])
    openssl_verify(tmp_path, new_leaf, [old_root], [new_ca, nwo])  # through newWithOld
    published = x509.load_pem_x509_certificates(await get(client, "/intermediates.pem"))
    for leaf in (old_leaf, new_leaf):
        for anchor in (old_root, nwn):
            openssl_verify(tmp_path, leaf, [anchor], published)
    assert await ocsp_status(client, new_leaf, new_ca) == GOOD
    assert await ocsp_status(client, old_leaf, old_ca) == GOOD
