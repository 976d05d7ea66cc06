"""A profile for legacy SCEP clients (``legacy = true``): DES and 3DES envelopes, SHA-1 and MD5
signatures, all accepted and advertised there only (SCEP-01, SCEP-02); the CertRep answers in the
request's own content cipher. Issued certificates are still ordinary: pkilint clean, chained."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import scep_client
from tests.integration.scep_support import LEGACY, ScepServer, check_issued, enrol, module_server

pytestmark = pytest.mark.slow
PATH = "/scep/legacy/pkiclient.exe"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[ScepServer]:
    yield from module_server(tmp_path_factory, template_dir)


def test_get_ca_caps_advertises_des3_and_sha1(server: ScepServer) -> None:
    """SCEP-01."""
    reply = server.http("GET", f"{server.base}{PATH}?operation=GetCACaps")
    caps = reply.body.decode().split()
    assert "DES3" in caps and "SHA-1" in caps and "AES" in caps


@pytest.mark.parametrize(
    ("cipher", "digest", "csr_digest"),
    [("des3", "sha1", "sha1"), ("des", "md5", "md5"), ("des3", "sha256", "sha256"), ("aes128", "sha1", "sha256")],
)
def test_legacy_algorithms_enrol(server: ScepServer, tmp_path: Path, cipher: str, digest: str, csr_digest: str) -> None:
    """SCEP-02: each legacy combination enrols; the reply is enveloped in the request's cipher."""
    name = f"{cipher}-{digest}-{csr_digest}.example.com"
    requester, rep = enrol(
        server, name, challenge=LEGACY, path=PATH, cipher=cipher, digest=digest, csr_digest=csr_digest
    )
    assert rep.status == scep_client.SUCCESS, rep.fail_info_text
    assert rep.cipher == cipher
    check_issued(server, tmp_path, rep.certificate, requester, [name])


def test_a_forged_md5_csr_is_still_refused(server: ScepServer) -> None:
    """Allowing MD5 is not skipping the check: a CSR whose MD5 signature does not verify is
    badMessageCheck, and nothing is issued."""
    requester = scep_client.Requester.fresh()
    csr = bytearray(scep_client.build_csr(requester.key, "forged.example.com", challenge=LEGACY, digest="md5"))
    csr[-3] ^= 0x01  # inside the signature, the CSR's last field
    message = scep_client.pki_message(
        scep_client.PKCS_REQ, bytes(csr), requester, server.ra_certificate(), cipher="des3"
    )
    before = server.counts()
    rep = server.exchange(message, requester, PATH)
    assert (rep.status, rep.fail_info) == (scep_client.FAILURE, scep_client.BAD_MESSAGE_CHECK), rep.fail_info_text
    assert server.counts() == before


def test_sscep_md5_transaction_id_is_accepted(server: ScepServer) -> None:
    """sscep's transactionID (hex MD5 of the SubjectPublicKeyInfo) and micromdm's (base64 of
    SHA-256 cut to 160 bits, or SHA-1, of the PKCS#1 key) all tie the request to its key."""
    for form in ("md5-hex", "rfc7093-base64", "sha1-base64"):
        requester = scep_client.Requester.fresh()
        _, rep = enrol(
            server,
            f"{form}.example.com",
            challenge=LEGACY,
            path=PATH,
            requester=requester,
            transaction=requester.transaction_id(form),
        )
        assert rep.status == scep_client.SUCCESS, (form, rep.fail_info_text)
