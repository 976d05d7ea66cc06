"""The dashboard's guards through aiohttp's test client, the whole app served on the manage
listener with the demo CA (SQLite): login answers and
throttling, CSRF refusals, escaping, role limits, the `.mobileconfig` (docs/dashboard.md).

The browser tests (tests/browser) drive the same pages in chromium; these check, faster, what a
browser would hide: exact statuses, headers and the HTML as sent.
"""

from __future__ import annotations

import datetime as dt
import plistlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from ca.inventory.model import NewEntry, Source
from ca.keys import generate_private_key
from ca.operators.roles import Role
from ca.service import CertificateAuthority
from ca.store.tables import audit_log
from tests.integration.manage.conftest import Client, Serve, manage_config

PASSWORD = "a passphrase long enough"
HOSTILE_CN = "<script>alert(1)</script>"
HOSTILE_SAN = "evil\x1b[31m.example.com"


@dataclass
class Dashboard:
    ca: CertificateAuthority
    client: Client

    async def login_token(self) -> str:
        page = await (await self.client.get("/ui/login")).text()
        return _csrf(page)

    async def sign_in(self, user: str) -> str:
        """Signs ``user`` in; the session's CSRF token from the page it lands on."""
        token = await self.login_token()
        reply = await self.client.post("/ui/login", data={"csrf": token, "user": user, "password": PASSWORD})
        assert reply.status == 200, await reply.text()
        return _csrf(await reply.text())

    async def audit_rows(self) -> int:
        return (await self.ca.audit.verify()).events


async def last_actor(ca: CertificateAuthority) -> str:
    query = select(audit_log.c.actor).order_by(audit_log.c.seq.desc()).limit(1)
    return str(await ca.db.read(lambda conn: conn.execute(query).scalar_one()))


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


@pytest.fixture
async def dashboard(serve: Serve, ca_dir: Path, sqlite_url: str) -> Dashboard:
    """The whole app on the manage listener, with an administrator and an auditor of the
    tests' own (`tetra init` made "admin")."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url, TETRA_SERVER__PROTOCOLS='["scep"]'))
    for name, role in (("ada", Role.ADMINISTRATOR), ("audrey", Role.AUDITOR)):
        await ca.operators.users.add(name, role, actor="test", password=PASSWORD)
    return Dashboard(ca, client)


async def _hostile(ca: CertificateAuthority, team: str | None = None) -> int:
    now = ca.clock.now()
    key = generate_private_key("ec-p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_CN)])
    der = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTILE_SAN)]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.DER)
    )
    (placed,) = await ca.inventory.add([NewEntry(der, Source.IMPORTED, owner="o", team=team)], actor="test", now=now)
    return placed.id


async def test_wrong_passwords_are_401_then_429_with_retry_after(dashboard: Dashboard) -> None:
    """OPS-06 on the dashboard: one message for a wrong password; after the user's limit the
    form answers 429 with Retry-After, even for the right password, and sets no session."""
    token = await dashboard.login_token()
    statuses = []
    for _ in range(5):
        reply = await dashboard.client.post("/ui/login", data={"csrf": token, "user": "ada", "password": "wrong"})
        statuses.append(reply.status)
        assert "Wrong user name or password." in await reply.text()
    assert statuses == [401] * 5
    reply = await dashboard.client.post("/ui/login", data={"csrf": token, "user": "ada", "password": PASSWORD})
    assert reply.status == 429
    assert int(reply.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in await reply.text()
    assert "tetra_session" not in {c.key for c in dashboard.client.session.cookie_jar}


async def test_the_session_cookie_and_the_login_forms_own_token(dashboard: Dashboard) -> None:
    """OPS-04: the login form is refused without its double-submitted token; a sign-in sets
    `tetra_session` HttpOnly, SameSite=Strict, Path=/ui/; `next` leads only into the dashboard."""
    await dashboard.login_token()
    forged = await dashboard.client.post("/ui/login", data={"csrf": "forged", "user": "ada", "password": PASSWORD})
    assert forged.status == 403
    token = await dashboard.login_token()
    data = {"csrf": token, "user": "ada", "password": PASSWORD, "next": "//evil.example/ui/"}
    reply = await dashboard.client.post("/ui/login", data=data, allow_redirects=False)
    assert reply.status == 303 and reply.headers["Location"] == "/ui/"
    cookie = reply.cookies["tetra_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ui/"
    assert not cookie["secure"]  # served over plain HTTP here; the browser tests see Secure over HTTPS


async def test_changes_without_the_token_or_cross_site_are_refused_and_change_nothing(dashboard: Dashboard) -> None:
    """OPS-04: an edit with no token, a wrong one, a foreign Origin or Sec-Fetch-Site cross-site
    is 403; the record and the audit log are as they were; the right token saves it (OPS-07:
    one audit event naming the user)."""
    inventory_id = await _hostile(dashboard.ca)
    token = await dashboard.sign_in("ada")
    before = await dashboard.audit_rows()
    url = f"/ui/certificates/{inventory_id}/edit"
    form = {"owner": "mallory", "team": "", "application": "", "tags": ""}
    attempts = [
        ({}, {}),
        ({"csrf": "0" * len(token)}, {}),
        ({"csrf": token}, {"Origin": "https://evil.example"}),
        ({"csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
    ]
    for extra, headers in attempts:
        reply = await dashboard.client.post(url, data={**form, **extra}, headers=headers, allow_redirects=False)
        assert reply.status == 403, (extra, headers)
    record = await dashboard.ca.inventory.get(inventory_id)
    assert record is not None and record.owner == "o"
    assert await dashboard.audit_rows() == before
    header = {"X-CSRF-Token": token, "Sec-Fetch-Site": "same-origin"}  # as htmx sends it
    reply = await dashboard.client.post(url, data=form, headers=header, allow_redirects=False)
    assert reply.status == 303
    record = await dashboard.ca.inventory.get(inventory_id)
    assert record is not None and record.owner == "mallory"
    # OPS-07: the change is one audit event, by the signed-in user, and the chain still verifies
    report = await dashboard.ca.audit.verify()
    assert report.events == before + 1 and report.ok
    assert await last_actor(dashboard.ca) == "user:ada"


async def test_a_script_subject_and_control_characters_are_escaped(dashboard: Dashboard) -> None:
    """OPS-09: `<script>` in a subject is sent as text, an escape sequence in a SAN as \\x1b,
    on the certificate page, the search results and the expiring timeline."""
    inventory_id = await _hostile(dashboard.ca)
    await dashboard.sign_in("ada")
    for path in (f"/ui/certificates/{inventory_id}", "/ui/certificates?q=", "/ui/expiring"):
        reply = await dashboard.client.get(path)
        page = await reply.text()
        assert reply.status == 200, path
        # RFC 4514 writes the CN as \<script\>alert(1)\</script\>: the angle brackets must arrive escaped
        assert "&lt;script\\&gt;alert(1)\\&lt;/script\\&gt;" in page, path
        assert "<script" not in page.replace('<script src="/ui/static/htmx.min.js"', ""), path
        assert "\x1b" not in page, path
        assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    page = await (await dashboard.client.get(f"/ui/certificates/{inventory_id}")).text()
    assert "evil\\x1b[31m.example.com" in page


async def test_an_auditor_reads_but_cannot_change(dashboard: Dashboard) -> None:
    """The permission table: an auditor sees the audit log but no revoke or edit form, and its
    POST is 403 with nothing changed."""
    inventory_id = await _hostile(dashboard.ca)
    token = await dashboard.sign_in("audrey")
    assert (await dashboard.client.get("/ui/audit")).status == 200
    page = await (await dashboard.client.get(f"/ui/certificates/{inventory_id}")).text()
    assert "Revoke this certificate" not in page and 'action="/ui/certificates' not in page
    reply = await dashboard.client.post(
        f"/ui/certificates/{inventory_id}/edit", data={"csrf": token, "owner": "x"}, allow_redirects=False
    )
    assert reply.status == 403
    record = await dashboard.ca.inventory.get(inventory_id)
    assert record is not None and record.owner == "o"


async def test_the_mobileconfig_of_a_scep_profile(dashboard: Dashboard) -> None:
    """A profile SCEP serves: the plist with its URL and the issuing CA's SHA-256; a challenge
    given is written in, a control character in it is 400, a profile SCEP does not serve 404."""
    await dashboard.sign_in("ada")
    reply = await dashboard.client.get("/ui/profiles/device.mobileconfig", params={"challenge": "one-time-123"})
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/x-apple-aspen-config"
    assert reply.headers["Content-Disposition"] == 'attachment; filename="device.mobileconfig"'
    document = plistlib.loads(await reply.read())
    assert document["PayloadType"] == "Configuration"
    scep = document["PayloadContent"][0]["PayloadContent"]
    ca = dashboard.ca
    issuing = ca.ca_certificate(ca.issuing_generation(ca.default_issuer))
    assert issuing is not None
    assert scep["CAFingerprint"] == issuing.fingerprint(hashes.SHA256())
    assert scep["URL"] == "http://pki.example.com/scep/device"
    assert scep["Challenge"] == "one-time-123" and scep["Keysize"] == 2048 and scep["Key Type"] == "RSA"
    again = plistlib.loads(await (await dashboard.client.get("/ui/profiles/device.mobileconfig")).read())
    assert (
        again["PayloadUUID"] == document["PayloadUUID"]
        and again["PayloadContent"][0]["PayloadContent"]["Challenge"] == ""
    )
    bad = await dashboard.client.get("/ui/profiles/device.mobileconfig", params={"challenge": "a\nb"})
    assert bad.status == 400
    assert (await dashboard.client.get("/ui/profiles/nope.mobileconfig")).status == 404


async def test_a_requester_sees_its_team_only(dashboard: Dashboard) -> None:
    """OPS-02 on the dashboard, decided by the actions: a requester of team blue lands on a page
    it may open, finds blue's certificate and not red's, whose page is "not found" as a missing
    one is; pages summing up every team (audit log, discovery, issuance) are not in its
    navigation and answer 404."""
    blue, red = await _hostile(dashboard.ca, "blue"), await _hostile(dashboard.ca, "red")
    await dashboard.ca.operators.users.add("bob", Role.REQUESTER, ["blue"], actor="test", password=PASSWORD)
    token = await dashboard.login_token()
    reply = await dashboard.client.post("/ui/login", data={"csrf": token, "user": "bob", "password": PASSWORD})
    assert reply.status == 200 and str(reply.url).endswith("/ui/expiring")
    page = await (await dashboard.client.get("/ui/certificates", params={"q": ""})).text()
    assert f'href="/ui/certificates/{blue}"' in page and f'href="/ui/certificates/{red}"' not in page
    assert 'href="/ui/audit"' not in page
    assert (await dashboard.client.get(f"/ui/certificates/{blue}")).status == 200
    assert (await dashboard.client.get(f"/ui/certificates/{red}")).status == 404
    assert (await dashboard.client.get("/ui/certificates/999999")).status == 404
    for path in ("/ui/audit", "/ui/discovery", "/ui/issuance"):
        assert (await dashboard.client.get(path)).status == 403, path  # not a requester's permissions


async def test_an_officer_limited_to_a_team_gets_no_every_team_summary(dashboard: Dashboard) -> None:
    """OPS-02: an RA officer of team blue holds discovery.read and cas.read. The discovery page
    shows blue's scans and not red's (the discovery actions decide, as for the API); issuance,
    which sums up every team, is "not found" for it, and the health page sends it to the first
    page it may open."""
    scans, now = dashboard.ca.scans, dashboard.ca.clock.now()
    blue = await scans.start("network", ["blue.example.test:443"], actor="test", now=now, team="blue")
    red = await scans.start("network", ["red.example.test:443"], actor="test", now=now, team="red")
    await dashboard.ca.operators.users.add("rae", Role.RA_OFFICER, ["blue"], actor="test", password=PASSWORD)
    await dashboard.sign_in("rae")
    page = await dashboard.client.get("/ui/discovery")
    text = await page.text()
    assert page.status == 200 and "blue.example.test" in text and "red.example.test" not in text, (blue, red)
    assert (await dashboard.client.get("/ui/issuance")).status == 404
    landed = await dashboard.client.get("/ui/", allow_redirects=False)
    assert landed.status == 303 and landed.headers["Location"] == "/ui/expiring"


async def test_the_dashboard_is_not_on_a_public_listener(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """The login form and every page are the plain 404 of a missing path on the enrolment
    listeners, unless [manage] also_on names them."""
    client, _ = await serve(manage_config(ca_dir, sqlite_url), listener="http")
    for path in ("/ui/", "/ui/login", "/ui/static/tetra.css"):
        assert (await client.get(path, allow_redirects=False)).status == 404, path
    client, _ = await serve(manage_config(ca_dir, sqlite_url, TETRA_MANAGE__ALSO_ON='["http"]'), listener="http")
    assert (await client.get("/ui/login")).status == 200
