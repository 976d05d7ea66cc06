"""The two renewal forms real SCEP clients send that RFC 8894's RenewalReq rows do not cover, and
their edges, against `tetra serve` (SCEP-07, SCEP-17; the clients: interop/test_sscep.py and
interop/test_scepclient.py).

- sscep (and older devices: the draft-nourse renewal) sends a *PKCSReq* for a new key, signed by
  the certificate being renewed, without a challenge: a renewal, checked as one.
- micromdm's scepclient renews with the *same* key and CSR, so its RenewalReq carries the
  transactionID of the enrolment that issued the signing certificate: a new certificate, and a
  re-send of that renewal gets that new certificate again, not a third.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests import scep_client
from tests.integration.scep_support import ScepServer, check_issued, enrol, module_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[ScepServer]:
    yield from module_server(tmp_path_factory, template_dir)


def _pkcs_req_signed_by(
    server: ScepServer, signer: scep_client.Requester, new_key: rsa.RSAPrivateKey, name: str
) -> scep_client.Message:
    """A PKCSReq for new_key, no challenge, signed by `signer`'s certificate and key (sscep -K/-O)."""
    csr = scep_client.build_csr(new_key, name, [name])
    tid = scep_client.transaction_id(new_key.public_key(), "md5-hex")
    return scep_client.pki_message(scep_client.PKCS_REQ, csr, signer, server.ra_certificate(), transaction=tid)


def test_pkcsreq_signed_by_the_certificate_it_renews_is_a_renewal_scep_07(server: ScepServer, tmp_path: Path) -> None:
    """SCEP-07: sscep's renewal (PKCSReq, new key, signed by the current certificate, no
    challenge) gets a new certificate for the new key and the same name."""
    requester, first = enrol(server, "nourse.example.com")
    assert first.status == scep_client.SUCCESS, first.fail_info_text
    current = scep_client.Requester(requester.key, first.certificate)
    new_key = scep_client.new_key()
    renewed = server.exchange(_pkcs_req_signed_by(server, current, new_key, "nourse.example.com"), current)
    assert renewed.status == scep_client.SUCCESS, renewed.fail_info_text
    assert renewed.certificate.serial_number != first.certificate.serial_number
    check_issued(
        server,
        tmp_path,
        renewed.certificate,
        scep_client.Requester(new_key, renewed.certificate),
        ["nourse.example.com"],
    )


def _foreign_certificate(name: str) -> scep_client.Requester:
    """A certificate for `name` from a CA that is not Tetra's (issuer != subject: not self-signed)."""
    ca_key, key = scep_client.new_key(), scep_client.new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some Other CA")]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    return scep_client.Requester(key, cert)


def test_pkcsreq_signed_by_a_foreign_certificate_is_bad_request_scep_07(server: ScepServer) -> None:
    """SCEP-07: the same form signed by a certificate Tetra did not issue is FAILURE badRequest,
    and nothing is issued or stored."""
    stranger = _foreign_certificate("stranger.example.com")
    message = _pkcs_req_signed_by(server, stranger, scep_client.new_key(), "stranger.example.com")
    before = server.counts()
    rep = server.exchange(message, stranger)
    assert (rep.status, rep.fail_info) == (scep_client.FAILURE, scep_client.BAD_REQUEST), rep.fail_info_text
    assert server.counts() == before


def test_same_key_renewal_under_the_enrolment_transaction_id_scep_17(server: ScepServer, tmp_path: Path) -> None:
    """SCEP-07 / SCEP-17: scepclient's renewal (RenewalReq, same key, hence the transactionID of
    the enrolment) gets a new certificate; the same renewal sent again gets that one, not a third."""
    requester, first = enrol(server, "samekey.example.com")
    assert first.status == scep_client.SUCCESS, first.fail_info_text
    current = scep_client.Requester(requester.key, first.certificate)
    message = scep_client.renewal_req(
        current, server.ra_certificate(), requester.key, "samekey.example.com", ["samekey.example.com"]
    )
    assert message.transaction_id == requester.transaction_id()
    renewed = server.exchange(message, current)
    assert renewed.status == scep_client.SUCCESS, renewed.fail_info_text
    assert renewed.certificate.serial_number != first.certificate.serial_number
    check_issued(server, tmp_path, renewed.certificate, requester, ["samekey.example.com"])
    before = server.counts()
    again = server.exchange(message, current)
    assert again.status == scep_client.SUCCESS, again.fail_info_text
    assert again.certificate == renewed.certificate
    assert server.counts() == before
