"""Certificates out of whatever file an organisation keeps them in: one entry point, every format.

The inventory finds certificates on disks, in exports and in keystores, so the same bytes may
be PEM (one or many, PKCS#7 armoured too), a bare DER certificate, a PKCS#7 certs-only bundle,
a PKCS#12 file or a Java keystore. `read_certificates` tells them apart and returns the
certificates; anything else is a `NotCertificates` whose message is one line saying why.

Files come from anywhere, so reading must be cheap and safe:
- PEM is split line by line (no backtracking regex over megabytes of text);
- a hostile PKCS#12 file asks for billions of hash rounds per passphrase tried: its counts are
  read with asn1crypto and refused above a cap before any key derivation runs, and its key bags
  are never decrypted at all (pkcs12_reader, CLM-07);
- private keys are recognised only to say "a private key, no certificate": nothing here
  decrypts, keeps, returns or prints key material.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from ca.inventory.facts import parse_der_certificate
from ca.inventory.keystores import keystore_kind, parse_java_keystore
from ca.inventory.pkcs12_reader import load_pfx, pkcs12_certificates

PEM_MARKER = b"-----BEGIN "
_CERTIFICATE_LABELS = {"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"}
_PKCS7_LABELS = {"PKCS7", "CMS"}
_MAX_PEM_LINE = 100  # a BEGIN line; longer ones are text that happens to look like one


class NotCertificates(ValueError):
    """The bytes hold no certificate we can read; the message is the one-line reason."""


class WrongPassphrase(NotCertificates):
    """A PKCS#12 or Java keystore whose integrity check fails for every passphrase given."""


@dataclass(frozen=True)
class Container:
    kind: str  # "pem" | "der" | "pkcs7" | "pkcs12" | "jks" | "jceks"
    certificates: tuple[x509.Certificate, ...]


def read_certificates(
    data: bytes, *, passphrases: Sequence[bytes] = (), max_pkcs12_iterations: int = 1_000_000
) -> Container:
    """The certificates in ``data``, whatever container holds them, in file order, each once.

    PKCS#12 is tried with no passphrase, the empty one, then each of ``passphrases``; a Java
    keystore's digest is checked against the same list when passphrases are given (its
    certificates are stored in the clear, so without any they are read unverified, as keytool
    -list does). Each PKCS#12 candidate costs at most ``max_pkcs12_iterations`` hash rounds for
    the MAC and for each encrypted safe (a key bag is never decrypted). Raises NotCertificates
    (WrongPassphrase when only the passphrase is wrong).
    """
    kind = keystore_kind(data)
    if kind is not None:
        return _read_java_keystore(data, kind, passphrases)
    if PEM_MARKER in data:
        return _read_pem(data)
    if data[:1] == b"\x30":
        return _read_der(data, passphrases, max_pkcs12_iterations)
    raise NotCertificates("not PEM, DER or a Java keystore")


def looks_like_certificates(head: bytes, size: int) -> bool:
    """A cheap guess from a file's first bytes and its size: PEM armour, a Java keystore's magic,
    or a DER SEQUENCE whose length spans the file (or is BER-indefinite)."""
    if PEM_MARKER in head or keystore_kind(head) is not None:
        return True
    if head[:1] != b"\x30" or len(head) < 2:
        return False
    if head[1] == 0x80:
        return True
    return _outer_length(head) == size


def _outer_length(data: bytes) -> int | None:
    """Header plus content length of the first DER element, None when the header is not DER."""
    if len(data) < 2:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4 or len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


def _unique(certificates: Iterable[x509.Certificate]) -> tuple[x509.Certificate, ...]:
    seen: dict[bytes, x509.Certificate] = {}
    for certificate in certificates:
        seen.setdefault(certificate.public_bytes(Encoding.DER), certificate)
    return tuple(seen.values())


def _pem_blocks(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(label, base64 body) of each complete BEGIN/END block; RFC 7468 headers are dropped."""
    label: bytes | None = None
    body: list[bytes] = []
    for raw in data.splitlines():
        line = raw.strip()
        if line.startswith(PEM_MARKER) and line.endswith(b"-----") and len(line) <= _MAX_PEM_LINE:
            label, body = line[len(PEM_MARKER) : -5], []
        elif label is not None and line == b"-----END " + label + b"-----":
            yield label.decode("ascii", "replace"), b"".join(body)
            label = None
        elif label is not None and b":" not in line:
            body.append(line)


def _read_pem(data: bytes) -> Container:
    certificates: list[x509.Certificate] = []
    labels: list[str] = []
    for number, (label, body) in enumerate(_pem_blocks(data), start=1):
        labels.append(label)
        if label not in _CERTIFICATE_LABELS and label not in _PKCS7_LABELS:
            continue
        try:
            der = base64.b64decode(body, validate=True)
            if label in _PKCS7_LABELS:
                certificates.extend(pkcs7.load_der_pkcs7_certificates(der))
            else:
                length = _outer_length(der) if label == "TRUSTED CERTIFICATE" else None
                certificates.append(parse_der_certificate(der[:length] if length else der))
        except (ValueError, binascii.Error) as exc:
            raise NotCertificates(f"PEM block {number} ({label}) is not valid: {_first_line(exc)}") from None
    if certificates:
        bearing = {label for label in labels if label in _CERTIFICATE_LABELS | _PKCS7_LABELS}
        return Container("pkcs7" if bearing <= _PKCS7_LABELS else "pem", _unique(certificates))
    if not labels:
        raise NotCertificates("PEM armour without a complete BEGIN/END block")
    if any("PRIVATE KEY" in label for label in labels):
        raise NotCertificates("a private key, no certificate")
    raise NotCertificates(f"PEM with no certificate ({', '.join(sorted(set(labels)))})")


def _read_der(data: bytes, passphrases: Sequence[bytes], max_iterations: int) -> Container:
    try:
        return Container("der", (parse_der_certificate(data),))
    except ValueError:
        pass
    try:
        bundle = pkcs7.load_der_pkcs7_certificates(data)
    except ValueError:
        pass
    else:
        if not bundle:
            raise NotCertificates("a PKCS#7 with no certificate")
        return Container("pkcs7", _unique(bundle))
    pfx = load_pfx(data)
    if pfx is not None:
        return _read_pkcs12(pfx, passphrases, max_iterations)
    length = _outer_length(data)
    if length is not None and length > len(data):
        raise NotCertificates(f"truncated DER ({len(data)} of {length} bytes)")
    raise NotCertificates("DER that is not a certificate, PKCS#7 or PKCS#12")


def _read_pkcs12(pfx: Any, passphrases: Sequence[bytes], max_iterations: int) -> Container:
    candidates: list[bytes | None] = [None, b""]
    candidates.extend(p for p in passphrases if p not in candidates)
    try:
        found = pkcs12_certificates(pfx, candidates, max_iterations)
    except ValueError as exc:
        raise NotCertificates(f"PKCS#12 {exc}") from None
    if found is None:
        raise WrongPassphrase(f"PKCS#12 integrity check fails with {_tried(passphrases)}")
    if not found:
        raise NotCertificates("a PKCS#12 with no certificate")
    return Container("pkcs12", _unique(found))


def _read_java_keystore(data: bytes, kind: str, passphrases: Sequence[bytes]) -> Container:
    try:
        store = parse_java_keystore(data)
    except ValueError as exc:
        raise NotCertificates(f"{kind.upper()} keystore that is malformed: {exc}") from None
    if passphrases and not any(store.password_matches(p) for p in (b"", *passphrases)):
        raise WrongPassphrase(f"{kind.upper()} keystore digest does not match {_tried(passphrases)}")
    if not store.certificates:
        raise NotCertificates(f"a {kind.upper()} keystore with no certificate")
    return Container(kind, _unique(store.certificates))


def _tried(passphrases: Sequence[bytes]) -> str:
    given = len(passphrases)
    return "the empty passphrase" + (f" or the {given} given" if given > 1 else " or the one given" if given else "")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
