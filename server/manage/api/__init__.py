"""Every endpoint of the management API, in one tuple: each resource module declares its own
`ENDPOINTS`, and this is the only place they are gathered. The router, the OpenAPI document
and docs/api.md's role table are all made from `ENDPOINTS`."""

from __future__ import annotations

from server.manage.api import (
    audit,
    cas,
    certificates,
    credentials,
    discovery,
    legacy,
    meta,
    notifications,
    profiles,
    requests,
    users,
)
from server.manage.endpoint import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = (
    *meta.ENDPOINTS,
    *certificates.ENDPOINTS,
    *requests.ENDPOINTS,
    *legacy.ENDPOINTS,
    *credentials.ENDPOINTS,
    *cas.ENDPOINTS,
    *profiles.ENDPOINTS,
    *discovery.ENDPOINTS,
    *notifications.ENDPOINTS,
    *audit.ENDPOINTS,
    *users.ENDPOINTS,
)
