"""ACME state in the shared database, one store per resource.

- `tables`: the six tables, on the core's `Base` so one Alembic history (0003_acme,
  0006_acme_orders_status) migrates them and every server process sees the same state (ST-15);
- `accounts`, `orders`, `authorizations` (with their challenges), `nonces`, `renewals`
  (the operator's renew-now requests for ARI): each store's SQL, its prebuilt hot-path
  statements and its row-to-record conversion; handlers see only the frozen records of
  protocols/acme/records.py.

Every store takes the `StateDatabase` the core hands a protocol, and imports the core's
database pieces only through `ca.state_store`.
"""
