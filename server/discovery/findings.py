"""What a probe can say about an endpoint, as codes with a fixed severity.

One table: a report's reader (the inventory, a dashboard, an alert rule) keys on the code, so a code
means the same thing everywhere and its severity is not decided case by case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["critical", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    """One problem (or fact) seen on an endpoint; ``detail`` says which certificate or what was read."""

    code: str
    severity: Severity
    detail: str


@dataclass(frozen=True)
class FindingCode:
    code: str
    severity: Severity
    doc: str


CODES: dict[str, FindingCode] = {
    c.code: c
    for c in (
        FindingCode(
            "protocol-sslv3", "critical", "The endpoint accepts SSLv3 (POODLE; only probed where OpenSSL can offer it)."
        ),
        FindingCode("protocol-tls1.0", "warning", "The endpoint accepts TLS 1.0, deprecated by RFC 8996."),
        FindingCode("protocol-tls1.1", "warning", "The endpoint accepts TLS 1.1, deprecated by RFC 8996."),
        FindingCode(
            "weak-cipher",
            "critical",
            "The endpoint accepts a suite without authentication, encryption or with a broken cipher.",
        ),
        FindingCode("expired", "critical", "A presented certificate's notAfter is before the probe's time."),
        FindingCode("not-yet-valid", "critical", "A presented certificate's notBefore is after the probe's time."),
        FindingCode("self-signed", "warning", "The leaf is self-signed and is not one of the trusted roots."),
        FindingCode("missing-intermediate", "warning", "A certificate's issuer is neither presented nor trusted."),
        FindingCode("unknown-root", "warning", "The chain ends at a self-signed certificate that is not trusted."),
        FindingCode(
            "hostname-mismatch", "critical", "The leaf's DNS names (RFC 6125 wildcards) do not cover the name probed."
        ),
        FindingCode("weak-key", "critical", "A presented certificate has an RSA or DSA key shorter than 2048 bits."),
        FindingCode("weak-signature", "critical", "The leaf or an intermediate is signed with SHA-1 or MD5."),
        FindingCode(
            "malformed-certificate", "warning", "A presented certificate could not be parsed; it is left unchecked."
        ),
        FindingCode("not-tls", "warning", "The peer answered with something that is not a TLS record."),
        FindingCode(
            "handshake-failed", "warning", "The peer speaks TLS but refused every handshake offered, or hung up."
        ),
        FindingCode("starttls-failed", "warning", "The plaintext protocol did not agree to start TLS."),
        FindingCode("timeout", "warning", "The endpoint's deadline passed; what was learnt before it is kept."),
        FindingCode("refused", "info", "Nothing listens: the connection was refused."),
        FindingCode("unreachable", "warning", "The address could not be reached (no route, host down)."),
        FindingCode(
            "chain-too-large", "warning", "The peer sent more handshake data than the probe reads; it stopped."
        ),
    )
}


def finding(code: str, detail: str) -> Finding:
    """A Finding for a code of the table (a KeyError for an unknown code is a bug, not input)."""
    return Finding(code, CODES[code].severity, detail)
