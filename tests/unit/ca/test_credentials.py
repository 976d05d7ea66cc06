"""Protocol credentials in the store (EST users, SCEP challenges, CMP secrets, ACME EAB keys) and the RA key.

SEC-02: a one-time challenge is accepted at most once, also under concurrency;
every check fails closed when the store fails.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ca.errors import CAError, FailureReason
from ca.service import CertificateAuthority
from ca.store.db import Database


async def test_password_verify(ca: CertificateAuthority) -> None:
    creds = ca.credentials
    await creds.create_password("est", "device-7", "s3cret!", profile="device", identities=("dns:d7.example.com",))
    ok = await creds.verify_password("est", "device-7", "s3cret!")
    assert ok is not None and ok.profile == "device" and ok.identities == ("dns:d7.example.com",)
    assert await creds.verify_password("est", "device-7", "wrong") is None
    assert await creds.verify_password("est", "nobody", "s3cret!") is None
    assert await creds.verify_password("cmp", "device-7", "s3cret!") is None  # only its own protocol (§1.9)
    await creds.revoke("est", "device-7")
    assert await creds.verify_password("est", "device-7", "s3cret!") is None


async def test_one_time_challenge_is_consumed_once_under_concurrency(ca: CertificateAuthority) -> None:
    """SEC-02 / SCEP-03: ten concurrent uses of one challenge: exactly one succeeds."""
    challenge = await ca.credentials.create_challenge("scep", profile="device")
    results = await asyncio.gather(*(ca.credentials.consume_challenge("scep", challenge) for _ in range(10)))
    assert sum(r is not None for r in results) == 1
    assert await ca.credentials.consume_challenge("scep", challenge) is None
    assert await ca.credentials.consume_challenge("scep", "not-a-challenge") is None


async def test_challenge_expiry_and_reusable(ca: CertificateAuthority) -> None:
    expired = await ca.credentials.create_challenge("scep", ttl=dt.timedelta(seconds=-1))
    assert await ca.credentials.consume_challenge("scep", expired) is None
    shared = await ca.credentials.create_challenge("scep", one_time=False, ttl=None)
    assert await ca.credentials.consume_challenge("scep", shared) is not None
    assert await ca.credentials.consume_challenge("scep", shared) is not None
    assert await ca.credentials.consume_challenge("est", shared) is None


async def test_mac_keys_bind_once_and_revoke(ca: CertificateAuthority) -> None:
    kid, secret = await ca.credentials.create_mac_key("acme", profile="tls-server")
    assert len(secret) == 32
    found = await ca.credentials.get_mac_key("acme", kid)
    assert found is not None and found.secret == secret
    assert await ca.credentials.bind("acme", kid, "account-1")
    assert not await ca.credentials.bind("acme", kid, "account-2")
    assert await ca.credentials.revoke("acme", kid)
    assert await ca.credentials.get_mac_key("acme", kid) is None


def test_new_key_ids_and_mac_keys_never_start_with_a_dash() -> None:
    """Operators paste them into command lines (certbot --eab-kid K, uacme -e K:H): a leading "-"
    reads as an option there. About one draw in 64 would start with one; 2,000 draws of each
    would almost surely include some."""
    from ca.credentials import _drawn

    key_ids = [_drawn(lambda: secrets.token_urlsafe(16)) for _ in range(2000)]
    mac_keys = [base64.urlsafe_b64encode(_drawn(lambda: secrets.token_bytes(32))).decode() for _ in range(2000)]
    assert not [k for k in key_ids + mac_keys if k.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(k)) == 32 for k in mac_keys)


async def test_credential_checks_fail_closed(ca: CertificateAuthority) -> None:
    """SEC-02 / docs/reliability.md, demand 7: a storage error during a check rejects, it never
    lets the request through."""
    challenge = await ca.credentials.create_challenge("scep")
    broken = Database("postgresql://postgres@127.0.0.1:1/none", timeout=3)
    creds = replace_db(ca, broken)
    with pytest.raises(CAError) as err:
        await creds.consume_challenge("scep", challenge)
    assert err.value.reason is FailureReason.UNAVAILABLE
    with pytest.raises(CAError):
        await creds.verify_password("est", "x", "y")
    await broken.close()
    assert await ca.credentials.consume_challenge("scep", challenge) is not None  # still unused


def replace_db(ca: CertificateAuthority, db: Database):  # type: ignore[no-untyped-def]
    from ca.credentials import CredentialStore

    return CredentialStore(db)


async def test_ra_key_decrypts_scep_envelopes(ca: CertificateAuthority) -> None:
    """The RA certificate's key (RSA) decrypts what a SCEP client encrypts to it; the CA key cannot."""
    ra = ca.ras["scep"]
    public = ra.certificate.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    ciphertext = public.encrypt(b"content-encryption-key", padding.PKCS1v15())
    plain = await ra.signer.run(lambda: ra.signer.decrypt(ciphertext))  # type: ignore[attr-defined]
    assert plain == b"content-encryption-key"
    ca_signer = ca.issuers[ca.default_issuer].signer
    with pytest.raises(CAError):
        ca_signer.decrypt(ciphertext)  # type: ignore[attr-defined]
