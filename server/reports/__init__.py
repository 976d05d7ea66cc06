"""`tetra report`: what an operator hands on about the certificates the organisation has.

Four reports read the inventory (ca/inventory, synced from the CA's ledger first): what expires
soon, what is weak or misplaced, the PCI DSS 4.0 inventory of trusted keys and certificates
(req. 4.2.1.1), and what Tetra issued. Each is gathered once into plain frozen rows
(``data.py``, ``issued.py``) and then written as CSV for a spreadsheet, JSON for a script, or one
self-contained HTML page with charts for a person; the renderers know nothing of the store, so the
three formats cannot disagree about what a report holds.
"""
