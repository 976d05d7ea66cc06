"""Profiles the CA uses for its own service certificates (HTTPS listener, SCEP RA, OCSP responder).

They are not in conf/profiles/ because no protocol may request them.
"""

from __future__ import annotations

from ca.profiles.loader import parse_profile
from ca.profiles.model import Profile


def service_tls_profile() -> Profile:
    return parse_profile(
        {
            "description": "Tetra's own HTTPS listener",
            "protocols": ["cli"],
            "auth_methods": ["operator"],
            "keys": {"allowed": ["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"]},
            "validity": {"default_days": 365, "max_days": 398},
            "names": {"san_types": ["dns", "ip"], "common_name": "first-san"},
            "extensions": {"key_usage": ["digital_signature"], "extended_key_usage": ["serverAuth"]},
        },
        "tetra-service-tls",
        "(built-in)",
    )


def ra_profile() -> Profile:
    """SCEP RA: clients encrypt envelopes to it (RSA key encipherment) and it signs replies."""
    return parse_profile(
        {
            "description": "Tetra registration authority (SCEP)",
            "protocols": ["cli"],
            "auth_methods": ["operator"],
            "keys": {"allowed": ["rsa-2048", "rsa-3072", "rsa-4096"]},
            "validity": {"default_days": 730, "max_days": 1825},
            "names": {
                "san_types": ["dns"],
                "require_san": False,
                "common_name": "from-request",
                "subject_attributes": ["CN", "O"],
            },
            "extensions": {"key_usage": ["digital_signature", "key_encipherment"]},
        },
        "tetra-ra",
        "(built-in)",
    )
