"""Who may do what on the management plane: users, their roles and teams, API tokens and
dashboard sessions.

- `roles.py`: the roles and the permission table, the one place access is decided; the API's
  routes, the dashboard and the permission table in docs/api.md all read it.
- `principal.py`: `Principal`, who is acting on one request, with what permissions and teams.
- `plane.py`: `Operators`, the stores below as the CA exposes them (`ca.operators`).
- `users.py`: users (who may exist, their passwords) and `principal_of`, what a user may do.
- `tokens.py`: API tokens; `logins.py`: dashboard logins and their throttling;
  `sessions.py`: dashboard sessions and their CSRF token.
- `model.py`: the records they return (never a hash or a secret); `errors.py`: the refusals;
  `passwords.py`: argon2id hashing off the event loop.
"""
