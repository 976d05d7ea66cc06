"""Java keystores (JKS and JCEKS), read by hand for the certificates they hold.

Both formats are a short big-endian record list that stores certificates in the clear: only
private and secret keys are encrypted, and those we never want. Reading the records ourselves
avoids an unmaintained third-party reader (pyjks) for a format that fits in a page, and means
no key is ever decrypted. The store's integrity digest (SHA-1 over the password, a fixed
phrase and the records) is exposed so that the caller decides its passphrase policy.

Layout (both kinds): magic, version (1 or 2), entry count, the entries, then 20 bytes of
digest. An entry is a tag, an alias (Java "modified UTF-8": 2-byte length then bytes) and a
millisecond timestamp, then: for a private key, the protected key (4-byte length, bytes) and
its chain; for a trusted certificate, one certificate. Version 2 names each certificate's type
("X.509") before its 4-byte length and DER. A JCEKS secret-key entry is a serialised Java
object with no length in front of it: java_serialization parses just enough of it to step over.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from cryptography import x509

from ca.inventory.facts import parse_der_certificate
from ca.inventory.java_serialization import BoundedReader, skip_object

JKS_MAGIC = 0xFEEDFEED
JCEKS_MAGIC = 0xCECECECE
KIND_BY_MAGIC = {JKS_MAGIC: "jks", JCEKS_MAGIC: "jceks"}

_PRIVATE_KEY_ENTRY = 1
_TRUSTED_CERTIFICATE_ENTRY = 2
_SECRET_KEY_ENTRY = 3
_DIGEST_BYTES = 20
_DIGEST_PHRASE = b"Mighty Aphrodite"  # what Java's JavaKeyStore and JceKeyStore mix into the digest


def keystore_kind(data: bytes) -> str | None:
    """The kind, "jks" or "jceks", when ``data`` starts with that keystore's magic, else None."""
    if len(data) < 4:
        return None
    return KIND_BY_MAGIC.get(int.from_bytes(data[:4], "big"))


@dataclass(frozen=True)
class JavaKeystore:
    kind: str  # "jks" | "jceks"
    certificates: tuple[x509.Certificate, ...]
    records: bytes  # everything the digest covers
    digest: bytes

    def password_matches(self, passphrase: bytes) -> bool:
        """Whether the store's integrity digest was made with ``passphrase`` (UTF-8 text)."""
        try:
            text = passphrase.decode("utf-8")
        except UnicodeDecodeError:
            return False
        expected = hashlib.sha1(text.encode("utf-16-be") + _DIGEST_PHRASE + self.records).digest()
        return hmac.compare_digest(expected, self.digest)


class _Reader(BoundedReader):
    """The store's records: bounded reads from its start."""

    def __init__(self, data: bytes, end: int) -> None:
        super().__init__(data, 0, end)

    def u16(self, what: str) -> int:
        return self.integer(2, what)

    def u32(self, what: str) -> int:
        return self.integer(4, what)

    def skip_utf(self, what: str) -> bytes:
        return self.take(self.u16(what), what)


def _certificate(reader: _Reader, version: int, where: str) -> x509.Certificate:
    if version == 2:
        cert_type = reader.skip_utf(f"{where} type")
        if cert_type != b"X.509":
            raise ValueError(f"{where} is of type {cert_type.decode('utf-8', 'replace')!r}, not X.509")
    der = reader.take(reader.u32(f"{where} length"), where)
    try:
        return parse_der_certificate(der)
    except ValueError as exc:
        raise ValueError(f"{where} is not a valid certificate ({exc})") from None


def parse_java_keystore(data: bytes) -> JavaKeystore:
    """The certificates of a JKS or JCEKS store: trusted entries and each key entry's chain.

    Raises ValueError with a one-line reason when ``data`` is not a well-formed store.
    """
    kind = keystore_kind(data)
    if kind is None:
        raise ValueError("no JKS or JCEKS magic")
    if len(data) < 12 + _DIGEST_BYTES:
        raise ValueError("truncated header")
    end = len(data) - _DIGEST_BYTES
    reader = _Reader(data, end)
    reader.take(4, "magic")
    version = reader.u32("version")
    if version not in (1, 2):
        raise ValueError(f"unknown version {version}")
    certificates: list[x509.Certificate] = []
    for index in range(1, reader.u32("entry count") + 1):
        where = f"entry {index}"
        tag = reader.u32(where)
        reader.skip_utf(f"{where} alias")
        reader.take(8, f"{where} timestamp")
        if tag == _TRUSTED_CERTIFICATE_ENTRY:
            certificates.append(_certificate(reader, version, f"{where} certificate"))
        elif tag == _PRIVATE_KEY_ENTRY:
            reader.take(reader.u32(f"{where} key length"), f"{where} key")  # stays encrypted, unread
            for position in range(1, reader.u32(f"{where} chain length") + 1):
                certificates.append(_certificate(reader, version, f"{where} chain certificate {position}"))
        elif tag == _SECRET_KEY_ENTRY:  # a sealed key, stepped over unread
            try:
                reader.offset = skip_object(data, reader.offset, end)
            except ValueError as exc:
                raise ValueError(f"{where} secret key: {exc}") from None
        else:
            raise ValueError(f"{where} has unknown tag {tag}")
    if reader.offset != end:
        raise ValueError(f"{end - reader.offset} unexpected bytes after the entries")
    return JavaKeystore(kind, tuple(certificates), data[:end], data[end:])
