"""CertificateList encoding (RFC 5280 §5.1) for a whole revoked list at once.

Entries are encoded straight from store values (hex serials, stored times) into
one list of byte strings and joined once: about ten times faster than building
cryptography RevokedCertificate objects, which matters at a million entries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509

from ca.der import encode_length, oid
from ca.revocation import asn1
from ca.revocation.reasons import reason_code

_REASON_OID = oid("2.5.29.21")
_INVALIDITY_OID = oid("2.5.29.24")
_V2 = b"\x02\x01\x01"


def _utc_text(value: str | dt.datetime) -> bytes:
    """Store time -> DER Time TLV. SQLite hands back 'YYYY-MM-DD HH:MM:SS[.ffffff]' text
    (always UTC here, see ca.store.tables.UTCDateTime); PostgreSQL hands back datetimes."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return asn1.x509_time(value)
    digits = value[:19].replace("-", "").replace(" ", "").replace(":", "")  # YYYYMMDDHHMMSS
    if len(digits) != 14:
        raise ValueError(f"unexpected stored time {value!r}")
    if digits < "2050":
        return b"\x17\x0d" + digits[2:].encode() + b"Z"
    return b"\x18\x0f" + digits.encode() + b"Z"


def _generalized(value: str | dt.datetime) -> bytes:
    if isinstance(value, dt.datetime):
        return asn1.generalized_time(value if value.tzinfo else value.replace(tzinfo=dt.UTC))
    digits = value[0:4] + value[5:7] + value[8:10] + value[11:13] + value[14:16] + value[17:19]
    return b"\x18\x0f" + (digits + "Z").encode()


class EntryEncoder:
    """revokedCertificates entries; the reasonCode extension of each reason is encoded once."""

    def __init__(self) -> None:
        self._reasons: dict[str | None, bytes] = {}
        self.examples: dict[tuple[str | None, bool], bytes] = {}  # one entry of each shape, for the lint

    def _reason(self, reason: str | None) -> bytes:
        found = self._reasons.get(reason)
        if found is None:
            # BR 7.2.2: 'unspecified' is expressed by leaving the reasonCode out.
            if reason is None or reason == "unspecified":
                found = b""
            else:
                found = asn1.extension(_REASON_OID, asn1.enumerated(reason_code(reason)))
            self._reasons[reason] = found
        return found

    def encode(
        self,
        serial_hex: str,
        revoked_at: str | dt.datetime,
        reason: str | None,
        invalidity: str | dt.datetime | None = None,
    ) -> bytes:
        # The hot loop of a million-entry CRL: every length here is under 128 (short form).
        exts = self._reasons.get(reason)
        if exts is None:
            exts = self._reason(reason)
        if invalidity is not None:
            exts += asn1.extension(_INVALIDITY_OID, _generalized(invalidity))
        if len(serial_hex) & 1:
            serial_hex = "0" + serial_hex
        serial = bytes.fromhex(serial_hex)
        if serial[0] & 0x80:
            serial = b"\x00" + serial
        if revoked_at.__class__ is str and revoked_at < "2050":  # SQLite text: inline _utc_text
            when = b"\x17\x0d" + revoked_at[2:19].replace("-", "").replace(" ", "").replace(":", "").encode() + b"Z"
        else:
            when = _utc_text(revoked_at)
        body = b"\x02" + bytes((len(serial),)) + serial + when
        if exts:
            body += bytes((0x30, len(exts))) + exts
        entry = bytes((0x30, len(body))) + body
        if len(self.examples) < 32:
            self.examples.setdefault((reason, invalidity is not None), entry)
        return entry


@dataclass(frozen=True)
class CrlFrame:
    """Everything in a TBSCertList except the entries."""

    issuer: bytes  # the CA subject Name, byte-identical to its certificate (CRL-03)
    algorithm: bytes
    this_update: dt.datetime
    next_update: dt.datetime
    extensions: tuple[bytes, ...]


def crl_extensions(
    aki: x509.AuthorityKeyIdentifier,
    number: int,
    *,
    base_number: int | None = None,
    scope_url: str | None = None,
    freshest_url: str | None = None,
) -> tuple[bytes, ...]:
    """AKI and CRL number always (RFC 5280 §5.2.1, §5.2.3); a Delta CRL Indicator on deltas
    (§5.2.4, critical); an IDP naming the partition's URL (§5.2.5, critical); Freshest CRL
    on complete CRLs that have deltas (§5.2.6)."""
    exts = [asn1.x509_extension(aki), asn1.x509_extension(x509.CRLNumber(number))]
    if base_number is not None:
        exts.append(asn1.x509_extension(x509.DeltaCRLIndicator(base_number), critical=True))
    if scope_url is not None:
        idp = x509.IssuingDistributionPoint(
            full_name=[x509.UniformResourceIdentifier(scope_url)],
            relative_name=None,
            only_contains_user_certs=True,
            only_contains_ca_certs=False,
            only_some_reasons=None,
            indirect_crl=False,
            only_contains_attribute_certs=False,
        )
        exts.append(asn1.x509_extension(idp, critical=True))
    if freshest_url is not None and base_number is None:
        point = x509.DistributionPoint([x509.UniformResourceIdentifier(freshest_url)], None, None, None)
        exts.append(asn1.x509_extension(x509.FreshestCRL([point])))
    return tuple(exts)


def tbs_cert_list(frame: CrlFrame, entries: list[bytes]) -> bytes:
    parts = [
        _V2,
        frame.algorithm,
        frame.issuer,
        asn1.x509_time(frame.this_update),
        asn1.x509_time(frame.next_update),
    ]
    if entries:  # RFC 5280 §5.1.2.6: absent, not empty, when nothing is revoked
        body = b"".join(entries)
        parts.append(b"\x30" + encode_length(len(body)) + body)
    parts.append(asn1.explicit(0, asn1.seq(*frame.extensions)))
    return asn1.seq(*parts)
