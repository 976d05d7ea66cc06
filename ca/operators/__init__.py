"""Who may do what on the management plane: users, their roles and teams, API tokens and
dashboard sessions.

- `roles.py`: the roles and the permission table, the one place access is decided; the API's
  routes, the dashboard and the permission table in docs/api.md all read it.
- `principal.py`: `Principal`, who is acting on one request, with what permissions and teams.
"""
