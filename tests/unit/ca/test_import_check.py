"""ca/authorities/import_check.py: the path from an imported CA certificate to its root, and the
one reason a certificate is refused (CAL-04), without a store or a command around it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from ca.authorities.import_check import ImportRefused, check_import
from ca.hierarchy import CAProfile, create_intermediate, create_root
from ca.keys import generate_private_key

NOW = dt.datetime(2027, 3, 1, 12, 0, tzinfo=dt.UTC)


def _root(
    cn: str = "Ext Root", *, now: dt.datetime = NOW - dt.timedelta(days=30), days: int = 3650
) -> tuple[Any, x509.Certificate]:
    key = generate_private_key("ec-p256")
    return key, create_root(CAProfile(cn, validity_days=days), key, now)


def _under(parent: tuple[Any, x509.Certificate], cn: str, **kw: Any) -> tuple[Any, x509.Certificate]:
    key = generate_private_key("ec-p256")
    now = kw.pop("now", NOW - dt.timedelta(days=1))
    cert = create_intermediate(CAProfile(cn, path_length=None, **kw), key.public_key(), parent[1], parent[0], now)
    return key, cert


def test_path_through_an_intermediate_to_the_given_or_a_trusted_root() -> None:
    """CAL-04: the chain file's own root, or a root already trusted; intermediates kept, nearest first."""
    root = _root()
    middle = _under(root, "Ext Policy CA")
    ca = _under(middle, "Tetra Issuing CA")
    given = check_import(ca[1], ca[0].public_key(), [middle[1], root[1]], [], NOW)
    assert given.intermediates == (middle[1],) and given.root == root[1]
    trusted = check_import(ca[1], ca[0].public_key(), [middle[1]], [root[1]], NOW)
    assert trusted.intermediates == (middle[1],) and trusted.root == root[1]
    assert ca[1].not_valid_after_utc == root[1].not_valid_after_utc  # capped: never outlives its parent
    direct = _under(root, "Direct CA")
    assert check_import(direct[1], direct[0].public_key(), [], [root[1]], NOW).intermediates == ()


def _refusal(*args: Any) -> str:
    with pytest.raises(ImportRefused) as refused:
        check_import(*args)
    return refused.value.reason


def test_each_refusal_names_its_reason() -> None:
    """CAL-04: another key, an expired certificate, a path that stops short or reaches another
    root of the same name, an intermediate that is not a CA, an expired root."""
    root = _root()
    ca = _under(root, "Tetra Issuing CA")
    stranger = generate_private_key("ec-p256").public_key()
    assert "another key" in _refusal(ca[1], stranger, [root[1]], [], NOW)
    assert "expired" in _refusal(ca[1], ca[0].public_key(), [root[1]], [], NOW + dt.timedelta(days=4000))
    assert "a root this CA trusts" in _refusal(ca[1], ca[0].public_key(), [], [], NOW)
    impostor = _root("Ext Root")  # same name, another key
    assert "the given root 'CN=Ext Root'" in _refusal(ca[1], ca[0].public_key(), [impostor[1]], [], NOW)
    old_root = _root("Old Root", now=NOW - dt.timedelta(days=20), days=10)
    assert "the root 'CN=Old Root' expired" in _refusal(*_signed_by(old_root), NOW)

    # A leaf certificate in the middle of the path: not a CA, so it cannot have signed ours.
    leaf_key = generate_private_key("ec-p256")
    leaf = _certificate(root, "Not A CA", leaf_key.public_key(), ca=False)
    below = _certificate((leaf_key, leaf), "Tetra Issuing CA", ca[0].public_key(), ca=True)
    assert "the chain's 'CN=Not A CA' is not a CA certificate" in _refusal(
        below, ca[0].public_key(), [leaf, root[1]], [], NOW
    )


def _signed_by(
    root: tuple[Any, x509.Certificate],
) -> tuple[x509.Certificate, Any, list[x509.Certificate], list[x509.Certificate]]:
    key = generate_private_key("ec-p256")
    cert = _certificate(root, "Tetra Issuing CA", key.public_key(), ca=True)
    return cert, key.public_key(), [root[1]], []


def _certificate(issuer: tuple[Any, x509.Certificate], cn: str, public: Any, *, ca: bool) -> x509.Certificate:
    usage = x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string(f"CN={cn}"))
        .issuer_name(issuer[1].subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=100))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(issuer[0], hashes.SHA256())
    )


def test_a_ca_without_keycertsign_is_refused() -> None:
    """CAL-04: basicConstraints cA=TRUE alone is not enough; the CA must be allowed to sign certificates."""
    root = _root()
    key = generate_private_key("ec-p256")
    usage = x509.KeyUsage(True, False, False, False, False, False, True, False, False)  # cRLSign only
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=Tetra Issuing CA"))
        .issuer_name(root[1].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=100))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .sign(root[0], hashes.SHA256())
    )
    assert "keyCertSign" in _refusal(cert, key.public_key(), [root[1]], [], NOW)
