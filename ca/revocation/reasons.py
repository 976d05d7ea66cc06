"""RFC 5280 §5.3.1 reason codes, by name and number, minus the ones a public CA must not use."""

from __future__ import annotations

from cryptography import x509

from ca.digits import parse_decimal
from ca.errors import CAError, FailureReason

REASONS: dict[str, tuple[int, x509.ReasonFlags]] = {
    "unspecified": (0, x509.ReasonFlags.unspecified),
    "keyCompromise": (1, x509.ReasonFlags.key_compromise),
    "cACompromise": (2, x509.ReasonFlags.ca_compromise),
    "affiliationChanged": (3, x509.ReasonFlags.affiliation_changed),
    "superseded": (4, x509.ReasonFlags.superseded),
    "cessationOfOperation": (5, x509.ReasonFlags.cessation_of_operation),
    "privilegeWithdrawn": (9, x509.ReasonFlags.privilege_withdrawn),
    "aACompromise": (10, x509.ReasonFlags.aa_compromise),
}
_BY_CODE = {code: name for name, (code, _) in REASONS.items()}
# certificateHold (6) and removeFromCRL (8): no suspension (CA/B Forum BR 4.9.13); 7 is unused.
REFUSED = {6: "certificateHold", 7: "(unassigned)", 8: "removeFromCRL"}


def parse_reason(value: str | int) -> str:
    """Canonical reason name from a name ('keyCompromise', 'key-compromise') or a code (an int,
    or ASCII digits). Anything else, a bool included, is refused as malformed."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise CAError("revocation reason must be a name or a reason code", FailureReason.MALFORMED)
    code = value if isinstance(value, int) else parse_decimal(value, 2)
    if code is not None:
        if code in _BY_CODE:
            return _BY_CODE[code]
        label = REFUSED.get(code, str(code)[:20])
        raise CAError(f"revocation reason {label} is not accepted", FailureReason.MALFORMED)
    wanted = str(value).replace("-", "").replace("_", "").lower()
    for name in REASONS:
        if name.lower() == wanted:
            return name
    names = ", ".join(REASONS)
    raise CAError(f"unknown revocation reason {str(value)[:40]!r} (one of: {names})", FailureReason.MALFORMED)


def reason_flag(name: str) -> x509.ReasonFlags:
    return REASONS[name][1]


def reason_code(name: str) -> int:
    return REASONS[name][0]
