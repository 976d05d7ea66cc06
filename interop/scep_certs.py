"""Keys, CSRs and the checks every certificate a SCEP client got from Tetra must pass (SCEP-12).

Both SCEP client tests (sscep, micromdm scepclient) hold each issued certificate to the same
bar, so the bar is written once here: it chains to Tetra's root through the issuing CA
(`openssl verify`), carries the requested name as CN and DNS SAN, certifies the client's own
key, and passes pkilint.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.integration.est_support import openssl
from tests.pkilint_check import assert_certificate_lints_clean


def rsa_key(path: Path) -> Path:
    """An RSA-2048 key: SCEP envelopes the reply to the requester's key, which key transport
    (the only recipient type sscep and scepclient decrypt) needs to be RSA."""
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(path))
    return path


def csr_with_challenge(directory: Path, name: str, key: Path, challenge: str = "") -> Path:
    """`openssl req` for CN=name with a DNS SAN and, if given, the challengePassword attribute
    SCEP carries the challenge in (RFC 8894 §2.2); a PEM file, as sscep reads it."""
    attributes = f"[attrs]\nchallengePassword = {challenge}\n" if challenge else "[attrs]\n"
    config = directory / f"{name}.cnf"
    config.write_text(
        "[req]\nprompt = no\ndistinguished_name = dn\nattributes = attrs\nreq_extensions = ext\n"
        f"[dn]\nCN = {name}\n{attributes}[ext]\nsubjectAltName = DNS:{name}\n"
    )
    csr = directory / f"{name}.csr"
    openssl("req", "-new", "-key", str(key), "-config", str(config), "-out", str(csr))
    return csr


def load_certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def assert_issued(
    cert_path: Path, key_path: Path, name: str, *, root: Path, chain: Path, dns: tuple[str, ...] | None = None
) -> x509.Certificate:
    """The certificate a client wrote chains to root via chain, has CN `name` and the DNS SANs
    asked for (`dns`; by default `name` alone), holds the public half of key_path, and lints
    clean; returned for further checks."""
    openssl("verify", "-CAfile", str(root), "-untrusted", str(chain), str(cert_path))
    cert = load_certificate(cert_path)
    common_names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    assert common_names == [name], cert.subject.rfc4514_string()
    assert _dns_names(cert) == list((name,) if dns is None else dns)
    private = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert cert.public_key() == private.public_key(), "the certificate does not hold the client's key"
    assert_certificate_lints_clean(cert.public_bytes(Encoding.DER))
    return cert


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return sans.get_values_for_type(x509.DNSName)
