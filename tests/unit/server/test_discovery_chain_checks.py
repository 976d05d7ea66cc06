"""Discovery's chain checks on chains built in the test: the path is found whatever the order the
certificates come in, a trusted self-signed leaf is fine, and bytes that are no certificate become a
finding instead of an exception (so one odd endpoint cannot stop a scan, CLM-06)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from server.discovery.chain_checks import check_chain
from tests.discovery_pki import LEAF_NAME, der, issue, resigned_with_sha1, shared_pki

NOW = dt.datetime.now(dt.UTC)


def codes(chain: tuple[bytes, ...], *, trust: list[x509.Certificate] | None = None) -> list[str]:
    roots = [shared_pki().root.cert] if trust is None else trust
    return sorted(f.code for f in check_chain(chain, trust=roots, now=NOW, server_name=LEAF_NAME))


def test_path_found_in_any_order_and_extra_certificates_ignored() -> None:
    """Intermediate after an unrelated certificate, the root presented too: still a clean path."""
    pki = shared_pki()
    stranger = issue("stranger", issuer=None, ca=True, valid=(dt.timedelta(days=-9), dt.timedelta(days=-8)))
    chain = der(pki.leaf.cert, stranger.cert, pki.root.cert, pki.intermediate.cert)
    assert codes(chain) == []  # the expired stranger is not on the path


def test_trusted_self_signed_leaf_has_no_finding() -> None:
    leaf = issue("pinned", issuer=None, names=[LEAF_NAME])
    assert codes(der(leaf.cert), trust=[leaf.cert]) == []
    assert codes(der(leaf.cert)) == ["self-signed"]


def test_findings_on_an_intermediate_and_a_root_without_its_signature_checked() -> None:
    """A 1024-bit intermediate signed with SHA-1 gives weak-key and weak-signature; the SHA-1
    self-signature of the unknown root it leads to gives none (a root's own signature is not relied on)."""
    small_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    real_root = issue("SHA-1 root", issuer=None, ca=True)
    signed_root = resigned_with_sha1(real_root, real_root)
    intermediate = resigned_with_sha1(issue("Small", issuer=signed_root, ca=True, key=small_key), signed_root)
    leaf = issue("leaf", issuer=intermediate, names=[LEAF_NAME])
    assert codes(der(leaf.cert, intermediate.cert, signed_root.cert)) == ["unknown-root", "weak-key", "weak-signature"]


def test_bytes_that_are_no_certificate() -> None:
    """A garbage leaf stops the checks with malformed-certificate; a garbage intermediate is skipped."""
    pki = shared_pki()
    assert codes((b"\x30\x03\x02\x01\x01",)) == ["malformed-certificate"]
    assert codes((der(pki.leaf.cert)[0], b"junk", der(pki.intermediate.cert)[0])) == ["malformed-certificate"]
    assert check_chain((), trust=[], now=NOW, server_name=LEAF_NAME) == []
