"""The management plane: the REST API under /api/v1 (and, on branch `ui`, the dashboard under /ui/).

Everything the API does is declared once in `server.manage.api.ENDPOINTS` (server/manage/endpoint.py
says what a declaration holds); the router (server/manage/router.py), the permission check, the
OpenAPI document (server/manage/openapi.py) and the role table in docs/api.md are all made
from that tuple, so none of them can disagree with another.
"""
