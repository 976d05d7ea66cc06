"""CAs and profiles: every CA generation as `tetra ca list` shows it, every profile with what it
allows, and for each profile that SCEP serves, its Apple `.mobileconfig` to download."""

from __future__ import annotations

from aiohttp import web

from ca.operators.roles import Permission
from ca.profiles.model import Profile
from server.cli.ca_status import ca_lines
from server.manage.ui import mobileconfig as apple
from server.manage.ui.context import authority, render, require, server_config

CHALLENGE_MAX = 255


def _serves_scep(request: web.Request, profile: Profile) -> bool:
    return "scep" in profile.protocols and "scep" in server_config(request).protocols


async def cas_and_profiles(request: web.Request) -> web.Response:
    seen = require(request, Permission.PROFILES_READ)
    ca = authority(request)
    config = server_config(request)
    cas = []
    if seen.principal.can(Permission.CAS_READ):
        counts = await ca.certificates.count_valid_by_issuer(ca.clock.now())
        cas = ca_lines(ca, config, counts)
    profiles = sorted(ca.profiles.values(), key=lambda p: p.name)
    scep = {p.name for p in profiles if _serves_scep(request, p)}
    return render("cas.html", request, {"cas": cas, "profiles": profiles, "scep": scep})


async def mobileconfig(request: web.Request) -> web.Response:
    """The profile's `.mobileconfig`; `?challenge=` fills the challenge (else the MDM does)."""
    require(request, Permission.PROFILES_READ)
    ca = authority(request)
    config = server_config(request)
    profile = ca.profiles.get(request.match_info["profile"])
    if profile is None or not _serves_scep(request, profile):
        raise web.HTTPNotFound(text="no SCEP profile of that name\n")
    challenge = request.query.get("challenge", "")
    if len(challenge) > CHALLENGE_MAX or any(ord(c) < 0x20 for c in challenge):
        raise web.HTTPBadRequest(text=f"a challenge is printable text of at most {CHALLENGE_MAX} characters\n")
    generation = ca.issuing_generation(profile.issuer or ca.default_issuer)
    certificate = ca.ca_certificate(generation)
    if certificate is None:
        raise web.HTTPConflict(text=f"the issuing CA {generation} has no certificate yet\n")
    base = (config.http_url or config.https_url).rstrip("/")
    enrolment = apple.ScepEnrolment(profile, f"{base}/scep/{profile.name}", generation, certificate, challenge)
    return web.Response(
        body=apple.build(enrolment),
        content_type=apple.CONTENT_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{apple.filename(profile)}"'},
    )
