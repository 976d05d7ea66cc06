"""Does the requester's proof cover what is being asked for?"""

from __future__ import annotations

from ca.enrollment import EnrollmentRequest
from ca.errors import NotAuthorized


def check_identifiers_proven(request: EnrollmentRequest) -> None:
    """Every requested name must be among those the requester proved (SEC-01).

    Requesters whose method does not prove names (operators, shared secrets)
    carry None and are bounded by the profile's name rules alone.
    """
    proven = request.requester.proven_identifiers
    if proven is None:
        return
    for ident in request.subject_alt_names:
        if ident not in proven:
            raise NotAuthorized(f"requester {request.requester.name} is not authorized for {ident}")
