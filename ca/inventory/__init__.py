"""The certificate inventory: every certificate the organisation has, whoever issued it.

Three sources feed one table (``inventory``), one row per certificate (its SHA-256 fingerprint):
what Tetra issued (copied from the CA's own ledger, ``certificates``, by ``sync.py``), what an
operator imported from files or another CA's export, and what discovery found on the network or
on disk. Where a certificate was seen is a *sighting* (endpoint or path, first and last seen), so
the same certificate on two servers stays one record with two locations (CLM-01).

The CA's ledger stays the authority for what Tetra signed and revoked (OCSP and CRLs read it); the
inventory only mirrors it, so nothing here is on the issuance path.
"""
