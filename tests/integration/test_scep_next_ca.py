"""SCEP-19: GetNextCACert hands out the CA certificate staged for a rollover
([issuers.<name>] next_certificate), signed by the RA so a client can trust it through the RA
it already knows (RFC 8894 §4.7)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from tests.integration.scep_support import running_server

pytestmark = pytest.mark.slow


def _next_ca() -> x509.Certificate:
    """A staged next CA certificate (self-signed: the test checks its delivery, not a rollover)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tetra"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Tetra Next Issuing CA"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_get_next_ca_cert_serves_the_staged_certificate(template_dir: Path, tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    shutil.copytree(template_dir, ca_dir)
    following = _next_ca()
    (ca_dir / "ca" / "next.pem").write_bytes(following.public_bytes(serialization.Encoding.PEM))
    config = ca_dir / "tetra.toml"
    config.write_text(
        config.read_text().replace(
            'signer = "issuing-ca"\n', 'signer = "issuing-ca"\nnext_certificate = "ca/next.pem"\n', 1
        )
    )
    with running_server(ca_dir, tmp_path) as server:
        reply = server.http("GET", f"{server.url}?operation=GetNextCACert")
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/x-x509-next-ca-cert"
        signed = cms.ContentInfo.load(reply.body)["content"]
        carried = [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]
        assert following in carried
        ra = server.ra_certificate()
        (signer_info,) = signed["signer_infos"]
        assert signer_info["sid"].chosen["serial_number"].native == ra.serial_number
        public = ra.public_key()
        assert isinstance(public, rsa.RSAPublicKey)
        signed_attrs = b"\x31" + signer_info["signed_attrs"].dump()[1:]
        public.verify(signer_info["signature"].native, signed_attrs, padding.PKCS1v15(), hashes.SHA256())
