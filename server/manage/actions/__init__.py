"""What an operator can do to certificates and held requests, with its authorization, its team
checks and its audit, in one place: the API handlers (server/manage/api/) and the dashboard
(server/manage/ui/) both call these, so neither can forget a check the other makes.

Actions know nothing of HTTP or JSON: they take a `Principal` and plain values, return records,
and refuse with `CAError`s (server/manage/actions/errors.py), which each interface words in its
own terms. Every change is audited with actor = `principal.actor` (OPS-07).
"""
