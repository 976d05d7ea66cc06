"""The hand-written JKS/JCEKS reader: keytool's own stores, and stores assembled record by record
to reach the layouts keytool no longer writes (version 1) and the malformed ones it never writes.

Reliability: CLM-07 (hostile keystores: a bad tag, a cut record, trailing bytes and secret-key
entries are refused with a reason; lengths never read past the records).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ca.inventory.keystores import JCEKS_MAGIC, JKS_MAGIC, keystore_kind, parse_java_keystore
from tests.unit.ca.inventory.sample_files import KEYTOOL, Chain, make_chain, needs_keytool, run


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return make_chain(tmp_path_factory.mktemp("chain"))


def _utf(text: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + text


def _certificate_record(certificate: x509.Certificate, version: int, cert_type: bytes = b"X.509") -> bytes:
    der = certificate.public_bytes(Encoding.DER)
    return (_utf(cert_type) if version == 2 else b"") + len(der).to_bytes(4, "big") + der


def _store(entries: list[bytes], *, version: int = 2, magic: int = JKS_MAGIC, password: str = "pw") -> bytes:
    """A store from raw entry records, with the digest Java writes (SHA-1 over the UTF-16BE
    password, "Mighty Aphrodite" and the records)."""
    records = (
        magic.to_bytes(4, "big") + version.to_bytes(4, "big") + len(entries).to_bytes(4, "big") + b"".join(entries)
    )
    return records + hashlib.sha1(password.encode("utf-16-be") + b"Mighty Aphrodite" + records).digest()


def _trusted(certificate: x509.Certificate, version: int = 2, alias: bytes = b"ca") -> bytes:
    return (2).to_bytes(4, "big") + _utf(alias) + bytes(8) + _certificate_record(certificate, version)


def _key_entry(chain: list[x509.Certificate], version: int = 2) -> bytes:
    protected_key = b"\x30\x03\x02\x01\x00"  # opaque to the reader: never decoded
    head = (1).to_bytes(4, "big") + _utf(b"server") + bytes(8) + len(protected_key).to_bytes(4, "big") + protected_key
    return head + len(chain).to_bytes(4, "big") + b"".join(_certificate_record(c, version) for c in chain)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("magic", [JKS_MAGIC, JCEKS_MAGIC])
def test_assembled_store_versions_and_kinds(chain: Chain, version: int, magic: int) -> None:
    data = _store(
        [_key_entry([chain.leaf, chain.root], version), _trusted(chain.other, version)], version=version, magic=magic
    )
    store = parse_java_keystore(data)
    assert store.kind == ("jks" if magic == JKS_MAGIC else "jceks") == keystore_kind(data)
    assert store.certificates == (chain.leaf, chain.root, chain.other)
    assert store.password_matches(b"pw")
    assert not store.password_matches(b"pW")
    assert not store.password_matches(b"\xff\xfe")  # not UTF-8: no Java password could be it


def test_empty_store_and_no_magic() -> None:
    assert parse_java_keystore(_store([])).certificates == ()
    assert keystore_kind(b"\xfe\xed\xfe") is None
    with pytest.raises(ValueError, match=r"^no JKS or JCEKS magic$"):
        parse_java_keystore(b"\x30\x82\x01\x00" + bytes(40))


def _entry(tag: int, body: bytes) -> bytes:
    return tag.to_bytes(4, "big") + _utf(b"x") + bytes(8) + body


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (_entry(7, b""), r"^entry 1 has unknown tag 7$"),
        (_entry(3, b"\xac\xed\x00\x05"), r"^entry 1 secret key: truncated in serialised object$"),
        (_entry(2, _utf(b"X.509") + (10**6).to_bytes(4, "big")), r"^truncated in entry 1 certificate$"),
        (_entry(2, _utf(b"X.509") + (3).to_bytes(4, "big") + b"abc"), r"^entry 1 certificate is not a valid"),
        (_entry(1, (5).to_bytes(4, "big") + b"key"), r"^truncated in entry 1 key$"),
    ],
)
def test_malformed_entries(entry: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_java_keystore(_store([entry]))


def test_certificate_of_another_type(chain: Chain) -> None:
    entry = _entry(2, _certificate_record(chain.root, 2, b"PGP"))
    with pytest.raises(ValueError, match=r"^entry 1 certificate is of type 'PGP', not X.509$"):
        parse_java_keystore(_store([entry]))


def test_unknown_version_and_trailing_bytes(chain: Chain) -> None:
    with pytest.raises(ValueError, match=r"^unknown version 3$"):
        parse_java_keystore(_store([_trusted(chain.root)], version=3))
    good = _store([_trusted(chain.root)])
    with pytest.raises(ValueError, match=r"^5 unexpected bytes after the entries$"):
        parse_java_keystore(good[:-20] + b"extra" + good[-20:])
    counted_two = good[:8] + (2).to_bytes(4, "big") + good[12:]
    with pytest.raises(ValueError, match=r"^truncated in entry 2$"):
        parse_java_keystore(counted_two)


@needs_keytool
def test_keytool_non_ascii_password(chain: Chain, tmp_path: Path) -> None:
    """Java hashes the password as UTF-16BE characters: a non-ASCII one shows the encoding is right."""
    assert KEYTOOL is not None
    password = "pässwörd€"
    jks = tmp_path / "store.jks"
    run(KEYTOOL, "-importcert", "-noprompt", "-alias", "ca", "-file", chain.root_pem, "-keystore", jks,
        "-storetype", "JKS", "-storepass", password)  # fmt: skip
    store = parse_java_keystore(jks.read_bytes())
    assert store.certificates == (chain.root,)
    assert store.password_matches(password.encode("utf-8"))
    assert not store.password_matches(password.encode("latin-1", "replace"))


@needs_keytool
def test_keytool_jceks_with_secret_keys(chain: Chain, tmp_path: Path) -> None:
    """Secret-key entries (serialised SealedObjects) are stepped over: the certificate entry
    around them is read, and the digest over all records matches, so nothing was misread."""
    assert KEYTOOL is not None
    jceks = tmp_path / "store.jceks"
    common: list[str | Path] = ["-keystore", jceks, "-storetype", "JCEKS", "-storepass", "changeit"]
    run(KEYTOOL, "-genseckey", "-alias", "aes", "-keyalg", "AES", "-keysize", "128", "-keypass", "changeit", *common)
    run(KEYTOOL, "-importcert", "-noprompt", "-alias", "ca", "-file", chain.root_pem, *common)
    run(
        KEYTOOL,
        "-genseckey",
        "-alias",
        "hmac",
        "-keyalg",
        "HmacSHA256",
        "-keysize",
        "256",
        "-keypass",
        "changeit",
        *common,
    )
    data = jceks.read_bytes()
    store = parse_java_keystore(data)
    assert store.certificates == (chain.root,)
    assert store.password_matches(b"changeit")
    for length in range(12, len(data) - 20):  # every cut inside the records is a clean refusal
        with pytest.raises(ValueError, match=r"truncated|unexpected bytes|serialis"):
            parse_java_keystore(data[:length] + data[-20:])


_OBJECT_ARRAY = bytes([0x72]) + _utf(b"[Ljava.lang.Object;") + bytes(8) + b"\x02\x00\x00\x78\x70"


def _nested_arrays(levels: int) -> bytes:
    """A serialisation stream of Object[] arrays nested ``levels`` deep, the innermost holding null."""
    inner = b"\x75\x71" + (0x7E0000).to_bytes(4, "big") + (1).to_bytes(4, "big")  # arrays of the first class
    return b"\xac\xed\x00\x05" + b"\x75" + _OBJECT_ARRAY + (1).to_bytes(4, "big") + inner * (levels - 1) + b"\x70"


def test_serialised_secret_keys_are_stepped_over_and_bounded(chain: Chain) -> None:
    """CLM-07: a legitimate nesting is stepped over; a hostile one ends in a one-line refusal."""
    store = parse_java_keystore(_store([_entry(3, _nested_arrays(5)), _trusted(chain.root)], magic=JCEKS_MAGIC))
    assert store.certificates == (chain.root,)
    with pytest.raises(ValueError, match=r"^entry 1 secret key: serialised object nested deeper than 32$"):
        parse_java_keystore(_store([_entry(3, _nested_arrays(100_000))], magic=JCEKS_MAGIC))
    with pytest.raises(ValueError, match=r"^entry 1 secret key: serialised reference to an unknown handle$"):
        parse_java_keystore(_store([_entry(3, b"\xac\xed\x00\x05\x71\x00\x7e\x00\x05")], magic=JCEKS_MAGIC))
    with pytest.raises(ValueError, match=r"^entry 1 secret key: serialised element 0x7d is not supported$"):
        parse_java_keystore(_store([_entry(3, b"\xac\xed\x00\x05\x7d")], magic=JCEKS_MAGIC))
    with pytest.raises(ValueError, match=r"^entry 1 secret key: not a Java serialisation stream$"):
        parse_java_keystore(_store([_entry(3, b"\x00\x00\x00\x00")], magic=JCEKS_MAGIC))
