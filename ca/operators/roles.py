"""The roles and what each may do: the one permission table of the management plane.

Every API endpoint and dashboard form names one `Permission`; a request is allowed when the
acting principal holds it (`Principal.can`). docs/api.md prints this table, generated from
`ROLE_PERMISSIONS` by a test (OPS-01), so the documentation cannot drift from the code.

Teams are the second axis and are not in this table: a principal limited to teams sees and
acts on its teams' objects only (`Principal.sees_team`), whatever its permissions say.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ADMINISTRATOR = "administrator"  # everything, users and CAs included
    RA_OFFICER = "ra-officer"  # approves, rejects and revokes; manages protocol credentials
    REQUESTER = "requester"  # requests and renews within its teams and the profiles granted to them
    AUDITOR = "auditor"  # reads everything, changes nothing
    GUEST = "guest"  # time-limited, one team, read-only or request-only


class Permission(enum.StrEnum):
    CERTIFICATES_READ = "certificates.read"  # inventory search, show, download
    CERTIFICATES_REQUEST = "certificates.request"  # a CSR or a server-side key, under a profile
    CERTIFICATES_RENEW = "certificates.renew"  # renew or reissue a certificate already held
    CERTIFICATES_EDIT = "certificates.edit"  # owner, team, application, tags
    CERTIFICATES_REVOKE = "certificates.revoke"
    REQUESTS_READ = "requests.read"  # the approval queue and a request's outcome
    REQUESTS_DECIDE = "requests.decide"  # approve or reject a held request
    CREDENTIALS_READ = "credentials.read"  # EAB keys, SCEP challenges, EST users, CMP secrets: never the secrets
    CREDENTIALS_MANAGE = "credentials.manage"  # create and revoke them
    CAS_READ = "cas.read"
    CAS_MANAGE = "cas.manage"  # rollover, activate, revoke a CA
    PROFILES_READ = "profiles.read"
    PROFILES_WRITE = "profiles.write"
    DISCOVERY_READ = "discovery.read"  # scans and their findings
    DISCOVERY_SCAN = "discovery.scan"  # start a scan
    NOTIFICATIONS_READ = "notifications.read"
    NOTIFICATIONS_MANAGE = "notifications.manage"  # plan and send now, send a test
    AUDIT_READ = "audit.read"
    USERS_READ = "users.read"
    USERS_MANAGE = "users.manage"  # add, disable users; their tokens

    @property
    def reads_only(self) -> bool:
        return self.value.endswith(".read")


_READS = frozenset(p for p in Permission if p.reads_only)

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMINISTRATOR: frozenset(Permission),
    Role.RA_OFFICER: frozenset(
        {
            Permission.CERTIFICATES_READ,
            Permission.CERTIFICATES_REQUEST,
            Permission.CERTIFICATES_RENEW,
            Permission.CERTIFICATES_EDIT,
            Permission.CERTIFICATES_REVOKE,
            Permission.REQUESTS_READ,
            Permission.REQUESTS_DECIDE,
            Permission.CREDENTIALS_READ,
            Permission.CREDENTIALS_MANAGE,
            Permission.CAS_READ,
            Permission.PROFILES_READ,
            Permission.DISCOVERY_READ,
            Permission.DISCOVERY_SCAN,
            Permission.NOTIFICATIONS_READ,
        }
    ),
    Role.REQUESTER: frozenset(
        {
            Permission.CERTIFICATES_READ,
            Permission.CERTIFICATES_REQUEST,
            Permission.CERTIFICATES_RENEW,
            Permission.CERTIFICATES_EDIT,
            Permission.REQUESTS_READ,
            Permission.PROFILES_READ,
        }
    ),
    Role.AUDITOR: _READS,
    # A guest is narrowed further, per user, to read-only or request-only (GUEST_ACCESS).
    Role.GUEST: frozenset(
        {
            Permission.CERTIFICATES_READ,
            Permission.CERTIFICATES_REQUEST,
            Permission.REQUESTS_READ,
            Permission.PROFILES_READ,
        }
    ),
}

# What "read-only" and "request-only" leave a guest of its role's permissions.
GUEST_ACCESS: dict[str, frozenset[Permission]] = {
    "read": frozenset({Permission.CERTIFICATES_READ, Permission.REQUESTS_READ, Permission.PROFILES_READ}),
    "request": frozenset({Permission.CERTIFICATES_REQUEST, Permission.REQUESTS_READ, Permission.PROFILES_READ}),
}

# Roles that must name their teams: they see and act on those teams' objects only.
TEAM_BOUND = frozenset({Role.REQUESTER, Role.GUEST})


def parse_scopes(words: list[str]) -> frozenset[Permission]:
    """Token scopes as an operator types them: permission names, or `read` for every read
    permission. Unknown words raise ValueError naming the word."""
    scopes: set[Permission] = set()
    for word in words:
        if word == "read":
            scopes |= _READS
            continue
        try:
            scopes.add(Permission(word))
        except ValueError:
            raise ValueError(f"unknown scope {word!r} (a permission such as certificates.read, or read)") from None
    return frozenset(scopes)
