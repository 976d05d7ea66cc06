"""Times as API clients write them: ISO 8601, UTC when no offset is given."""

from __future__ import annotations

import datetime as dt

from server.manage.problems import Problem


def moment(text: str | None, where: str, code: str = "invalid-body") -> dt.datetime | None:
    """``text`` as an aware datetime (None stays None); a 400 problem naming ``where``
    ("body.expires_at", "query parameter since") when it is not a time."""
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Problem(code, f"{where} is not an ISO 8601 time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
