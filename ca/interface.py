"""The seam between the protocols and the core: everything a protocol may call, in one place.

A protocol (protocols/<name>/) receives a `CoreApi` in its context and calls only what
is declared here; the classes behind it (`ca.service.CertificateAuthority`, the issuers,
the repositories, the signers) stay private to ca/ and may change without a protocol
noticing. import-linter enforces the rule (pyproject.toml, `make lint`).

The path of one enrollment through this seam:

1. the protocol turns its wire message into an `EnrollmentRequest` (ca/enrollment.py;
   ca/csr.py and ca/crmf.py do the common translations);
2. ``decide(request)`` runs the profile's policy once and reads the certificate being
   replaced once; it returns a `Decision` or raises the `CAError` naming the rule that
   refuses (a dry run: nothing is stored);
3. ``enroll(decision, on_issued=...)`` issues (or holds for approval) exactly what was
   decided. ``on_issued`` is the protocol's own state change that says "issued" (ACME:
   the order becomes valid); it runs inside the transaction that records the certificate,
   so both commit together or neither does.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, cast

from cryptography import x509

from ca.clock import Clock
from ca.enrollment import EnrollmentOutcome, EnrollmentRequest, Issued, Requester
from ca.errors import CAError, FailureReason
from ca.profiles.model import Profile
from ca.profiles.policy import CertificateTemplate
from ca.records import CertificateRecord, Credential
from ca.signers.base import DecryptingSigner, Signer
from ca.state_store import StateDatabase, Tx

ResultWrite = Callable[[Tx, int], None]
"""A protocol's write that commits with an issued certificate: (transaction, certificate row id).
It must not raise for a condition it can tolerate: an exception fails the result commit."""


@dataclass(frozen=True)
class Decision:
    """What policy decided for one request: the certificate to build, and the row it replaces.

    Made only by ``CoreApi.decide``; ``enroll`` issues exactly this, without deciding again.
    """

    request: EnrollmentRequest
    template: CertificateTemplate
    replaced: CertificateRecord | None = None


@dataclass(frozen=True)
class RegistrationAuthority:
    """An RA identity (SCEP envelopes are encrypted to it, CMS replies signed by it)."""

    name: str
    certificate: x509.Certificate
    signer: Signer

    @property
    def decrypter(self) -> DecryptingSigner:
        """The RA key as the decrypter of SCEP envelopes (software and PKCS#11 keys both are);
        CAError at once for a backend that cannot decrypt, never a failure per request."""
        if not callable(getattr(self.signer, "decrypt", None)):
            raise CAError(f"RA {self.name}: its signer cannot decrypt", FailureReason.INTERNAL)
        return cast(DecryptingSigner, self.signer)


class Credentials(Protocol):
    """Protocol credentials: EST passwords, SCEP challenges, CMP and EAB MAC keys (ca/credentials.py).
    Every check fails closed: a storage error rejects the request."""

    async def verify_password(self, protocol: str, username: str, password: str) -> Credential | None: ...

    async def consume_challenge(self, protocol: str, challenge: str) -> Credential | None: ...

    async def get_mac_key(self, protocol: str, key_id: str) -> Credential | None: ...

    async def bind(self, protocol: str, key_id: str, bound_to: str) -> bool: ...

    # Operator side (a protocol's CLI commands: `tetra acme eab create`, later EST users...).
    async def create_password(
        self,
        protocol: str,
        username: str,
        password: str,
        *,
        profile: str | None = None,
        identities: tuple[str, ...] = (),
        actor: str = "operator",
    ) -> int: ...

    async def create_challenge(
        self,
        protocol: str,
        *,
        profile: str | None = None,
        identities: tuple[str, ...] = (),
        one_time: bool = True,
        ttl: dt.timedelta | None = ...,
        actor: str = "operator",
    ) -> str: ...

    async def create_mac_key(
        self,
        protocol: str,
        *,
        key_id: str | None = None,
        profile: str | None = None,
        identities: tuple[str, ...] = (),
        actor: str = "operator",
        secret: bytes | None = None,
    ) -> tuple[str, bytes]: ...

    async def revoke(self, protocol: str, key_id: str, actor: str = "operator") -> bool: ...

    async def list_credentials(self, protocol: str, kind: str) -> list[tuple[Credential, bool]]: ...


class CoreApi(Protocol):
    """What a protocol may ask of the certificate authority."""

    @property
    def clock(self) -> Clock: ...

    @property
    def profiles(self) -> Mapping[str, Profile]:
        """Every profile as loaded now (a reload swaps the whole set)."""
        ...

    @property
    def issuer_names(self) -> tuple[str, ...]: ...

    @property
    def default_issuer(self) -> str:
        """The issuer of a profile that names none (EST /cacerts answers with its chain)."""
        ...

    def chain(self, issuer: str) -> tuple[x509.Certificate, ...]:
        """The issuing CA certificate first, then the intermediates above it; no root."""
        ...

    def issuing_generation(self, family: str) -> str:
        """The issuer name of the generation of CA ``family`` (a profile's ``issuer``) issuing now."""
        ...

    @property
    def roots(self) -> tuple[x509.Certificate, ...]: ...

    def next_certificate(self, issuer: str) -> x509.Certificate | None:
        """The CA certificate staged to succeed ``issuer``'s ([issuers.<name>] next_certificate),
        if a rollover is pending: SCEP GetNextCACert hands it out ahead of time."""
        ...

    def root_update(
        self, issuer: str, old_root: x509.Certificate | None = None
    ) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate] | None:
        """newWithNew, newWithOld, oldWithNew when the root above ``issuer``'s chain (or the root
        ``old_root`` a client names) has a newer generation (a root rollover, RFC 4210 §4.4)."""
        ...

    def alternate_chains(self, issuer: str) -> list[tuple[x509.Certificate, ...]]:
        """``issuer``'s chain extended to the other root of a root rollover (through a link
        certificate), for the clients that trust only that root; empty without a rollover."""
        ...

    # -- enrollment ---------------------------------------------------------------------
    async def decide(self, request: EnrollmentRequest, *, replaced: CertificateRecord | None = None) -> Decision:
        """Policy, once: what would be issued, or the CAError that refuses it. Nothing is stored.
        ``replaced``: the record of ``request.replaces`` when the caller already holds it."""
        ...

    async def enroll(self, decision: Decision, *, on_issued: ResultWrite | None = None) -> EnrollmentOutcome:
        """Issue what was decided, or hold it for approval (Pending)."""
        ...

    async def enroll_with_server_key(self, decision: Decision, key_spec: str) -> Issued:
        """The CA makes the key pair (EST serverkeygen, CMP central key generation)."""
        ...

    async def poll(self, request_id: int) -> EnrollmentOutcome:
        """What became of a pending request: Pending, Issued, or refused (raised)."""
        ...

    # -- certificates -----------------------------------------------------------------------
    async def certificate(self, record_id: int) -> CertificateRecord | None: ...

    async def certificate_by_serial(self, issuer: str, serial: int) -> CertificateRecord | None: ...

    async def find_by_serial(self, serial: int, issuer: str | None = None) -> CertificateRecord:
        """The one certificate with this serial (under ``issuer`` if named); raises if none or several."""
        ...

    async def authenticate_certificate(self, certificate: x509.Certificate) -> CertificateRecord:
        """A certificate presented as proof (renewal, TLS client auth): ours, valid, not revoked."""
        ...

    def renewal_requester(self, record: CertificateRecord, name: str | None = None) -> Requester:
        """A requester proven by a certificate: it may ask again for exactly that certificate's names."""
        ...

    async def revoke(
        self,
        issuer: str,
        serial: int,
        reason: str | int,
        *,
        requester: str,
        revoked_at: dt.datetime | None = None,
        invalidity_date: dt.datetime | None = None,
    ) -> CertificateRecord: ...

    # -- what protocols keep and sign with ----------------------------------------------------
    @property
    def credentials(self) -> Credentials: ...

    def ra(self, name: str | None = None) -> RegistrationAuthority:
        """The RA certificate and key (the only one when ``name`` is None); CAError if none."""
        ...

    @property
    def state(self) -> StateDatabase:
        """Transactions for the protocol's own tables (ca/state_store.py)."""
        ...


__all__ = [
    "CoreApi",
    "Credentials",
    "Decision",
    "RegistrationAuthority",
    "ResultWrite",
    "Signer",  # what RegistrationAuthority carries; CMP signs its replies through it
]
