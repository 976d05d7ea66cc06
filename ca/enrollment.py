"""Protocol-neutral enrollment: what every protocol hands the core, and what it gets back.

ACME, EST, SCEP, CMP and the CLI each translate their own wire messages into an
`EnrollmentRequest`; the core answers with `Issued` or `Pending` (refusals are
raised as `CAError`).
"""

from __future__ import annotations

import datetime as dt
import enum
import ipaddress
import re
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)

from ca.errors import BadRequest

PROTOCOLS = ("acme", "est", "scep", "cmp", "api", "cli")
"""Every protocol that can carry an enrollment: the one list of names. Profiles say which of
them may use them (``protocols = [...]``); each enrolling protocol of protocols/registry.py
is named here, and `EnrollmentRequest.protocol` is one of them. ``api`` is the management
API, ``cli`` the local `tetra` command: an operator's two ways in, told apart by profiles."""


class AuthMethod(enum.Enum):
    """How the requester proved who it is; profiles list the methods they accept."""

    OPERATOR = "operator"  # local CLI or admin API
    ACME_ACCOUNT = "acme-account"
    CLIENT_CERTIFICATE = "client-certificate"  # TLS client cert or message signed by a cert we issued
    PASSWORD = "password"  # EST HTTP Basic
    CHALLENGE = "challenge"  # SCEP challengePassword
    SHARED_SECRET = "shared-secret"  # CMP MAC protection
    NONE = "none"


class EnrollmentKind(enum.Enum):
    NEW = "new"
    RENEW = "renew"  # same key, new certificate
    REKEY = "rekey"  # new key, replaces an existing certificate


@dataclass(frozen=True, order=True)
class Identifier:
    """A subjectAltName value in the neutral form 'dns:example.com', 'ip:192.0.2.1'..."""

    type: str  # dns | ip | email | uri
    value: str

    def __post_init__(self) -> None:
        if self.type not in ("dns", "ip", "email", "uri"):
            raise ValueError(f"unknown identifier type {self.type!r}")

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> Identifier:
        kind, sep, value = text.partition(":")
        if not sep or not value:
            raise ValueError(f"identifier {text!r} is not of the form type:value")
        return cls(kind, value)

    def to_general_name(self) -> x509.GeneralName:
        if self.type == "dns":
            return x509.DNSName(self.value)
        if self.type == "ip":
            return x509.IPAddress(ipaddress.ip_address(self.value))
        if self.type == "email":
            return x509.RFC822Name(self.value)
        return x509.UniformResourceIdentifier(self.value)


def identifiers_from_general_names(names: list[x509.GeneralName]) -> tuple[Identifier, ...]:
    """SAN entries as identifiers; types a CA does not certify here raise ValueError."""
    out: list[Identifier] = []
    for name in names:
        if isinstance(name, x509.DNSName):
            out.append(Identifier("dns", name.value))
        elif isinstance(name, x509.IPAddress):
            out.append(Identifier("ip", str(name.value)))
        elif isinstance(name, x509.RFC822Name):
            out.append(Identifier("email", name.value))
        elif isinstance(name, x509.UniformResourceIdentifier):
            out.append(Identifier("uri", name.value))
        else:
            raise ValueError(f"subjectAltName type {type(name).__name__} is not supported")
    return tuple(out)


@dataclass(frozen=True)
class Requester:
    """Who asks and how they proved it.

    ``proven_identifiers`` is None when the method does not restrict names by
    itself (an operator, a shared secret whose profile rules decide); otherwise
    every requested name must be among them (ACME authorizations, the names of
    the certificate being renewed).
    """

    name: str
    method: AuthMethod
    proven_identifiers: frozenset[Identifier] | None = None


@dataclass(frozen=True)
class CertificateRef:
    """Points at one certificate of ours: which issuer, which serial."""

    issuer: str
    serial: int


INVENTORY_FIELD_MAX = 255  # characters; the width of the certificates table's columns
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class InventoryFields:
    """Who owns a certificate and where it is deployed (for the inventory).

    Checked when made, before the request reaches the store: each is text of at most
    INVENTORY_FIELD_MAX characters, without control characters, or None. An object or a
    100 KB string once travelled as far as the INSERT, where it failed the whole group commit
    it shared with other requests (or, on SQLite, was stored as it came)."""

    owner: str | None = None
    team: str | None = None
    application: str | None = None
    location: str | None = None

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value is None:
                continue
            if not isinstance(value, str):
                raise BadRequest(f"inventory {name} must be text")
            if len(value) > INVENTORY_FIELD_MAX or _CONTROL.search(value):
                raise BadRequest(
                    f"inventory {name} must be at most {INVENTORY_FIELD_MAX} characters without control characters"
                )


@dataclass(frozen=True)
class EnrollmentRequest:
    """Everything the core needs to decide on and build one certificate."""

    protocol: str  # one of PROTOCOLS
    profile_name: str
    public_key: CertificatePublicKeyTypes
    subject: x509.Name
    subject_alt_names: tuple[Identifier, ...]
    requester: Requester
    kind: EnrollmentKind = EnrollmentKind.NEW
    requested_extensions: tuple[x509.Extension[x509.ExtensionType], ...] = ()
    raw_request: bytes = b""  # the CSR or CRMF as received, kept for audit and approval
    transaction_id: str | None = None  # the protocol's own id: retries find the same request
    replaces: CertificateRef | None = None  # renewal lineage
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    inventory: InventoryFields = field(default_factory=InventoryFields)


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]  # issuing CA first, root excluded
    issuer: str
    record_id: int
    private_key: CertificateIssuerPrivateKeyTypes | None = None  # server-side key generation only


@dataclass(frozen=True)
class Pending:
    """The profile wants an operator's approval; poll again after ``retry_after`` seconds."""

    request_id: int
    retry_after: int


EnrollmentOutcome = Issued | Pending
