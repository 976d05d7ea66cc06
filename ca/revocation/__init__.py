"""Revocation: reasons, marking certificates revoked (CRL and OCSP build on this)."""
