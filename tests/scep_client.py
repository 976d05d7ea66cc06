"""A SCEP client for the tests and the benchmark: builds PKIMessages and reads CertReps.

Written independently of the server's code (asn1crypto for the structures, cryptography for
the primitives, synchronous, no Tetra module used) so that a test compares the server with a
second reading of RFC 8894, not with itself. Where the structures come from:

- PKIMessage: a CMS SignedData (RFC 5652 §5) whose one signer carries SCEP's signed attributes
  messageType, transactionID, senderNonce (and on replies recipientNonce, pkiStatus, failInfo,
  failInfoText) — RFC 8894 §3.2.1 and §3.2.1.2-§3.2.1.5; the encapsulated content is the
  pkcsPKIEnvelope, a CMS EnvelopedData (RFC 5652 §6) to the RA certificate (§3.2.2).
- The envelope holds, by message type (§3.3): PKCSReq and RenewalReq a PKCS#10 request
  (RFC 2986) with the challengePassword attribute (§3.3.1); CertPoll an IssuerAndSubject
  (§3.3.3); GetCert and GetCRL an IssuerAndSerialNumber (§3.3.4, §3.3.5).
- CertRep (§3.3.2): signed by the RA; on SUCCESS its envelope, addressed to the requester's
  signing certificate, holds a degenerate SignedData (certificates or a CRL only, §3.4).
- GET form (§4.1): ``operation=PKIOperation&message=<base64, URL-encoded>``.

The transactionID defaults to the hex SHA-256 of the key's SubjectPublicKeyInfo (§3.2.1.1 says
a hash of the public key, hex or base64 encoded).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from asn1crypto import cms, core, csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

# RFC 8894 §3.2.1 (the VeriSign arc) and §3.2.1.4 (failInfoText).
OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"
OID_FAIL_INFO_TEXT = "1.3.6.1.5.5.7.24.1"

# messageType values (§3.2.1.2)
CERT_REP, RENEWAL_REQ, PKCS_REQ, CERT_POLL, GET_CERT, GET_CRL = "3", "17", "19", "20", "21", "22"
# pkiStatus (§3.2.1.3) and failInfo (§3.2.1.4) values
SUCCESS, FAILURE, PENDING = "0", "2", "3"
BAD_ALG, BAD_MESSAGE_CHECK, BAD_REQUEST, BAD_TIME, BAD_CERT_ID = "0", "1", "2", "3", "4"

CIPHERS = {  # name -> (OID, key bytes, block bytes)
    "aes128": ("2.16.840.1.101.3.4.1.2", 16, 16),
    "aes192": ("2.16.840.1.101.3.4.1.22", 24, 16),
    "aes256": ("2.16.840.1.101.3.4.1.42", 32, 16),
    "des3": ("1.2.840.113549.3.7", 24, 8),
    "des": ("1.3.14.3.2.7", 8, 8),
}
_CIPHER_BY_OID = {oid: (name, key, block) for name, (oid, key, block) in CIPHERS.items()}
DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha512": hashes.SHA512,
    "sha1": hashes.SHA1,
    "md5": hashes.MD5,
}
_DIGEST_OIDS = {
    "sha256": "2.16.840.1.101.3.4.2.1",
    "sha512": "2.16.840.1.101.3.4.2.3",
    "sha1": "1.3.14.3.2.26",
    "md5": "1.2.840.113549.2.5",
}
# sha*WithRSAEncryption / md5WithRSAEncryption for the CSR's own signature (RFC 8017 App. C)
_CSR_SIGNATURE_OIDS = {
    "sha256": "1.2.840.113549.1.1.11",
    "sha512": "1.2.840.113549.1.1.13",
    "sha1": "1.2.840.113549.1.1.5",
    "md5": "1.2.840.113549.1.1.4",
}


def new_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    """SCEP clients hold RSA keys: the CertRep envelope is encrypted to them (§3.2.2)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def self_signed(
    key: rsa.RSAPrivateKey, common_name: str = "scep-client", *, now: dt.datetime | None = None
) -> x509.Certificate:
    """The throw-away certificate a client signs PKCSReq with before it has one (§2.3), valid from
    five minutes before ``now`` for a day (``now`` in the past: an expired one)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = now or dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def transaction_id(public_key: rsa.RSAPublicKey, form: str = "sha256-hex") -> str:
    """A transactionID derived from the key (§3.2.1.1). ``form``: sha256-hex (this client's
    default), md5-hex (sscep), sha1-base64 of the PKCS#1 key (micromdm scepclient)."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if form == "sha256-hex":
        return hashlib.sha256(spki).hexdigest().upper()
    if form == "md5-hex":
        return hashlib.md5(spki).hexdigest().upper()
    if form == "sha1-base64":
        pkcs1 = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        return base64.b64encode(hashlib.sha1(pkcs1).digest()).decode()
    raise ValueError(f"unknown transactionID form {form!r}")


def build_csr(
    key: rsa.RSAPrivateKey,
    common_name: str,
    sans: Sequence[str] = (),
    *,
    challenge: str | None = None,
    digest: str = "sha256",
) -> bytes:
    """A PKCS#10 request (DER) with the challengePassword attribute (§3.3.1) and DNS SANs.
    SHA-1 and MD5 signatures (legacy clients) are made here by hand: cryptography refuses them."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    if challenge is not None:
        builder = builder.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    der = builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    if digest == "sha256":
        return der
    request = csr.CertificationRequest.load(der)
    info = request["certification_request_info"]
    signature = key.sign(info.dump(), padding.PKCS1v15(), DIGESTS[digest]())
    resigned = csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": _CSR_SIGNATURE_OIDS[digest], "parameters": core.Null()},
            "signature": signature,
        }
    )
    return bytes(resigned.dump())


def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def issuer_and_serial(issuer: x509.Name, serial: int) -> bytes:
    """IssuerAndSerialNumber (RFC 5652 §10.2.4): GetCert and GetCRL's content (§3.3.4, §3.3.5)."""
    value = cms.IssuerAndSerialNumber({"issuer": asn1_x509.Name.load(issuer.public_bytes()), "serial_number": serial})
    return bytes(value.dump())


class IssuerAndSubject(core.Sequence):  # type: ignore[misc]
    """CertPoll's content (§3.3.3)."""

    _fields: ClassVar[list[tuple[str, type[core.Asn1Value]]]] = [
        ("issuer", asn1_x509.Name),
        ("subject", asn1_x509.Name),
    ]


def issuer_and_subject(issuer: x509.Name, subject: x509.Name) -> bytes:
    value = IssuerAndSubject(
        {"issuer": asn1_x509.Name.load(issuer.public_bytes()), "subject": asn1_x509.Name.load(subject.public_bytes())}
    )
    return bytes(value.dump())


def envelope(
    content: bytes, recipient: x509.Certificate, cipher: str = "aes256", *, bad_padding: bool = False
) -> bytes:
    """pkcsPKIEnvelope (§3.2.2): EnvelopedData, KeyTransRecipientInfo with RSA PKCS#1 v1.5.
    ``bad_padding``: the plaintext's last block ends in 0x00, which no PKCS#7 padding does (a
    recipient that decrypts it must refuse it, every time)."""
    oid, key_bytes, block = CIPHERS[cipher]
    key, iv = os.urandom(key_bytes), os.urandom(block)
    if bad_padding:
        padded = content + b"\x00" * (block - len(content) % block)
    else:
        padder = sym_padding.PKCS7(block * 8).padder()
        padded = padder.update(content) + padder.finalize()
    encryptor = Cipher(_algorithm(cipher, key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    public = recipient.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    asn1 = _asn1_cert(recipient)
    ktri = cms.KeyTransRecipientInfo(
        {
            "version": "v0",
            "rid": cms.RecipientIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": asn1.issuer, "serial_number": asn1.serial_number},
            ),
            "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
            "encrypted_key": public.encrypt(key, padding.PKCS1v15()),
        }
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [cms.RecipientInfo(name="ktri", value=ktri)],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {"algorithm": oid, "parameters": core.OctetString(iv)},
                "encrypted_content": ciphertext,
            },
        }
    )
    return bytes(cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump())


def _algorithm(cipher: str, key: bytes) -> algorithms.AES | TripleDES:
    if cipher.startswith("aes"):
        return algorithms.AES(key)
    return TripleDES(key * 3 if len(key) == 8 else key)  # single DES is 3DES with K1=K2=K3


def _attribute(oid: str, value: core.Asn1Value) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": oid, "values": [value]})


def sign(
    content: bytes,
    key: rsa.RSAPrivateKey,
    certificate: x509.Certificate,
    attributes: Sequence[cms.CMSAttribute],
    digest: str = "sha256",
    extra_certificates: Sequence[x509.Certificate] = (),
) -> bytes:
    """SignedData (RFC 5652 §5) with ``content`` as id-data and the given signed attributes."""
    digest_value = hashlib.new(digest, content).digest()
    attrs = cms.CMSAttributes(
        [
            _attribute("1.2.840.113549.1.9.3", cms.ContentType("data")),
            _attribute("1.2.840.113549.1.9.5", cms.Time(name="utc_time", value=dt.datetime.now(dt.UTC))),
            _attribute("1.2.840.113549.1.9.4", core.OctetString(digest_value)),
            *attributes,
        ]
    )
    signature = key.sign(attrs.dump(), padding.PKCS1v15(), DIGESTS[digest]())
    asn1 = _asn1_cert(certificate)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                name="issuer_and_serial_number",
                value={"issuer": asn1.issuer, "serial_number": asn1.serial_number},
            ),
            "digest_algorithm": {"algorithm": _DIGEST_OIDS[digest]},
            "signed_attrs": attrs,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }
    )
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": _DIGEST_OIDS[digest]}],
            "encap_content_info": {"content_type": "data", "content": content},
            "certificates": [asn1, *(_asn1_cert(c) for c in extra_certificates)],
            "signer_infos": [signer_info],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


@dataclass
class Requester:
    """Who sends: the key, the certificate that signs (self-signed, or the one being renewed)."""

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def fresh(cls, common_name: str = "scep-client", bits: int = 2048) -> Requester:
        key = new_key(bits)
        return cls(key, self_signed(key, common_name))

    def transaction_id(self, form: str = "sha256-hex") -> str:
        public = self.key.public_key()
        return transaction_id(public, form)


@dataclass
class Message:
    """One PKIMessage as sent, and what the reply must echo."""

    der: bytes
    message_type: str
    transaction_id: str
    sender_nonce: bytes


def pki_message(
    message_type: str,
    content: bytes,
    requester: Requester,
    ra_certificate: x509.Certificate,
    *,
    cipher: str = "aes256",
    digest: str = "sha256",
    transaction: str | None = None,
    nonce: bytes | None = None,
    bad_padding: bool = False,
) -> Message:
    """Any PKIMessage (§3.2): ``content`` enveloped to the RA, signed by the requester."""
    tid = transaction if transaction is not None else requester.transaction_id()
    sender_nonce = nonce if nonce is not None else os.urandom(16)
    attributes = [
        _attribute(OID_MESSAGE_TYPE, core.PrintableString(message_type)),
        _attribute(OID_TRANSACTION_ID, core.PrintableString(tid)),
        _attribute(OID_SENDER_NONCE, core.OctetString(sender_nonce)),
    ]
    enveloped = envelope(content, ra_certificate, cipher, bad_padding=bad_padding)
    der = sign(enveloped, requester.key, requester.certificate, attributes, digest)
    return Message(der, message_type, tid, sender_nonce)


def pkcs_req(
    requester: Requester,
    ra_certificate: x509.Certificate,
    common_name: str,
    sans: Sequence[str] = (),
    *,
    challenge: str | None = None,
    csr_digest: str = "sha256",
    **options: object,
) -> Message:
    """PKCSReq (§3.3.1) for the requester's own key."""
    der = build_csr(requester.key, common_name, sans, challenge=challenge, digest=csr_digest)
    return pki_message(PKCS_REQ, der, requester, ra_certificate, **options)  # type: ignore[arg-type]


def renewal_req(
    requester: Requester,
    ra_certificate: x509.Certificate,
    new_key: rsa.RSAPrivateKey,
    common_name: str,
    sans: Sequence[str] = (),
    **options: object,
) -> Message:
    """RenewalReq (§3.3.1.2): a CSR for ``new_key`` (or the same key), signed with the current
    certificate (``requester.certificate``, Tetra-issued) and its key."""
    der = build_csr(new_key, common_name, sans)
    options.setdefault("transaction", transaction_id(new_key.public_key()))
    return pki_message(RENEWAL_REQ, der, requester, ra_certificate, **options)  # type: ignore[arg-type]


def cert_poll(
    requester: Requester, ra_certificate: x509.Certificate, issuer: x509.Name, subject: x509.Name, **options: object
) -> Message:
    """CertPoll / GetCertInitial (§3.3.3): same transactionID as the PKCSReq it polls for."""
    return pki_message(CERT_POLL, issuer_and_subject(issuer, subject), requester, ra_certificate, **options)  # type: ignore[arg-type]


def get_cert(
    requester: Requester, ra_certificate: x509.Certificate, issuer: x509.Name, serial: int, **options: object
) -> Message:
    return pki_message(GET_CERT, issuer_and_serial(issuer, serial), requester, ra_certificate, **options)  # type: ignore[arg-type]


def get_crl(
    requester: Requester, ra_certificate: x509.Certificate, issuer: x509.Name, serial: int, **options: object
) -> Message:
    return pki_message(GET_CRL, issuer_and_serial(issuer, serial), requester, ra_certificate, **options)  # type: ignore[arg-type]


def get_query(message: bytes, *, cisco: bool = False) -> str:
    """The query string of a GET PKIOperation (§4.1); ``cisco``: base64 broken into 64-character
    lines, as Cisco IOS sends it (%0A between lines)."""
    text = base64.b64encode(message).decode()
    if cisco:
        text = "\n".join(text[i : i + 64] for i in range(0, len(text), 64)) + "\n"
    return "operation=PKIOperation&message=" + urllib.parse.quote(text, safe="")


# -- reading replies -------------------------------------------------------------------------


@dataclass
class CertRep:
    """A verified CertRep (§3.3.2) and what its envelope held."""

    status: str
    fail_info: str | None
    fail_info_text: str | None
    transaction_id: str
    sender_nonce: bytes
    recipient_nonce: bytes
    signer: x509.Certificate
    certificates: list[x509.Certificate] = field(default_factory=list)
    crls: list[x509.CertificateRevocationList] = field(default_factory=list)
    cipher: str | None = None  # the content cipher of the reply's envelope

    @property
    def certificate(self) -> x509.Certificate:
        """The issued certificate: the one that is not a CA (the reply may carry the chain)."""
        leaves = [c for c in self.certificates if not _is_ca(c)]
        assert len(leaves) == 1, f"expected one end-entity certificate, got {len(leaves)}"
        return leaves[0]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _signed_attrs(signer_info: cms.SignerInfo) -> dict[str, core.Asn1Value]:
    return {a["type"].dotted: a["values"][0] for a in signer_info["signed_attrs"]}


def _text(value: core.Asn1Value) -> str:
    parsed = value.parsed if isinstance(value, core.Any) else value
    return str(parsed.native)


def _octets(value: core.Asn1Value) -> bytes:
    parsed = value.parsed if isinstance(value, core.Any) else value
    native = parsed.native
    assert isinstance(native, bytes)
    return native


def decrypt(enveloped_der: bytes, key: rsa.RSAPrivateKey) -> tuple[bytes, str]:
    """The plaintext of an EnvelopedData to ``key``, and the content cipher's name."""
    info = cms.ContentInfo.load(enveloped_der)
    enveloped = info["content"]
    ktri = enveloped["recipient_infos"][0].chosen
    session = key.decrypt(ktri["encrypted_key"].native, padding.PKCS1v15())
    eci = enveloped["encrypted_content_info"]
    name, _, block = _CIPHER_BY_OID[eci["content_encryption_algorithm"]["algorithm"].dotted]
    iv = eci["content_encryption_algorithm"]["parameters"].native
    decryptor = Cipher(_algorithm(name, session), modes.CBC(iv)).decryptor()
    padded = decryptor.update(eci["encrypted_content"].native) + decryptor.finalize()
    unpadder = sym_padding.PKCS7(block * 8).unpadder()
    return unpadder.update(padded) + unpadder.finalize(), name


def parse_cert_rep(der: bytes, sent: Message, key: rsa.RSAPrivateKey, ra_certificate: x509.Certificate) -> CertRep:
    """Verify a CertRep against the RA certificate and the message it answers, then decrypt
    its envelope with ``key``. AssertionError for anything §3.3.2 does not allow."""
    info = cms.ContentInfo.load(der)
    assert info["content_type"].native == "signed_data"
    signed = info["content"]
    (signer_info,) = signed["signer_infos"]
    sid = signer_info["sid"].chosen
    assert sid["serial_number"].native == ra_certificate.serial_number, "CertRep is not signed by the RA"
    attrs = signer_info["signed_attrs"]
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    public = ra_certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    signed_set = b"\x31" + attrs.dump()[1:]  # signed as SET OF, sent [0] IMPLICIT (RFC 5652 §5.4)
    public.verify(signer_info["signature"].native, signed_set, padding.PKCS1v15(), DIGESTS[digest_name]())
    content = signed["encap_content_info"]["content"].native or b""
    values = _signed_attrs(signer_info)
    assert hashlib.new(digest_name, content).digest() == _octets(values["1.2.840.113549.1.9.4"])
    assert _text(values[OID_MESSAGE_TYPE]) == CERT_REP
    reply = CertRep(
        status=_text(values[OID_PKI_STATUS]),
        fail_info=_text(values[OID_FAIL_INFO]) if OID_FAIL_INFO in values else None,
        fail_info_text=_text(values[OID_FAIL_INFO_TEXT]) if OID_FAIL_INFO_TEXT in values else None,
        transaction_id=_text(values[OID_TRANSACTION_ID]),
        sender_nonce=_octets(values[OID_SENDER_NONCE]),
        recipient_nonce=_octets(values[OID_RECIPIENT_NONCE]),
        signer=ra_certificate,
    )
    assert reply.transaction_id == sent.transaction_id, "CertRep transactionID differs"
    assert reply.recipient_nonce == sent.sender_nonce, "recipientNonce is not our senderNonce"
    assert len(reply.sender_nonce) == 16 and reply.sender_nonce != sent.sender_nonce
    if reply.status == SUCCESS:
        plain, reply.cipher = decrypt(content, key)
        degenerate = cms.ContentInfo.load(plain)["content"]
        for choice in degenerate["certificates"] or []:
            reply.certificates.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        for choice in degenerate["crls"] or []:
            reply.crls.append(x509.load_der_x509_crl(choice.chosen.dump()))
    else:
        assert not content, "a FAILURE or PENDING CertRep carries no content"
        assert (reply.fail_info is not None) == (reply.status == FAILURE)
    return reply


def certs_only(der: bytes) -> list[x509.Certificate]:
    """The certificates of a degenerate PKCS#7 (GetCACert's application/x-x509-ca-ra-cert)."""
    signed = cms.ContentInfo.load(der)["content"]
    return [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]
