"""The web dashboard, served at /ui/ on the management listener (docs/dashboard.md).

- `app.py`: `ui_app()`, the sub-application: templates, routes, static files, security headers.
- `guard.py`: who is asking (the `tetra_session` cookie) and the CSRF check of every POST (OPS-04).
- `login.py`: the login form, its throttling answer, and logout.
- one module per group of pages: `overview.py` (health at a glance), `certificates.py`
  (inventory search, a certificate, revoke and edit, expiring soon), `approvals.py` (the queue),
  `insight.py` (discovery findings, issuance chart, audit log), `authorities.py` (CAs, profiles,
  the SCEP `.mobileconfig` built by `mobileconfig.py`).

Reads that only the dashboard makes (health, charts) come from the CA's stores; every change and
every team-scoped read goes through the management actions (server/manage/actions), which decide
authorization and teams: the dashboard never checks a team itself.
"""

from server.manage.ui.app import UI_PREFIX, ui_app

__all__ = ["UI_PREFIX", "ui_app"]
