"""Every endpoint of the management API, in one tuple: each resource module declares its own
`ENDPOINTS`, and this is the only place they are gathered. The router, the OpenAPI document
and docs/api.md's role table are all made from `ENDPOINTS`."""

from __future__ import annotations

from server.manage.api import certificates, legacy, meta, requests
from server.manage.endpoint import Endpoint

ENDPOINTS: tuple[Endpoint, ...] = (
    *meta.ENDPOINTS,
    *certificates.ENDPOINTS,
    *requests.ENDPOINTS,
    *legacy.ENDPOINTS,
)
