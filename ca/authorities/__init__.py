"""The CA registry: every CA certificate generation Tetra signs with or answers for.

An issuing CA has a *family* name (what profiles and commands say: ``issuing-ca``) and one
or more *generations*, each with its own issuer name in the store and in URLs
(``issuing-ca``, ``issuing-ca.2``...). A rollover adds a generation; activation moves
issuance to it at a chosen time; the older generations keep signing OCSP and CRLs for what
they issued. Roots are registered the same way, so a root rollover is a generation too.

- `tables.py`: the ``authorities`` table (migration 0011).
- `model.py`: the frozen `Authority` record and the `State` it is in at a moment.
- `lineage.py`: which generation of a family issues now, and when each one retires.
- `store.py`: reading and changing the registry, each change with its audit event.
- `root_publication.py`: a root's ARL and OCSP answers, signed ahead of time with its offline key.
"""
