"""The dashboard in a real browser (Debian's chromium through Playwright) against a real
`tetra serve`: signing in, the approval queue releasing a SCEP device's poll, revoking from the
inventory until OCSP says so, CSRF refusals, escaping, keyboard use, and screenshots.

One server and one browser for the module; each test opens its own browser context (its own
cookies), so the tests do not depend on each other's sessions.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import plistlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from playwright.sync_api import Browser, BrowserContext, Dialog, Page, Playwright, expect, sync_playwright

from ca.inventory.model import NewEntry, Source
from ca.keys import generate_private_key
from server.wiring import build_ca, read_config
from tests import scep_client
from tests.browser.dashboard_support import (
    CHROMIUM,
    PASSWORDS,
    SCREENSHOTS,
    DashboardServer,
    dashboard_server,
    eventually,
)
from tests.integration.scep_support import HELD, STATIC, enrol

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="chromium is not installed (make debian-packages)")

HOSTILE_CN = "<script>alert('cn')</script>"
HOSTILE_SAN = "evil\x1b[31m.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[DashboardServer]:
    yield from dashboard_server(tmp_path_factory, template_dir)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # The manage listener serves HTTPS with the demo's certificate, which this browser does not trust.
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    yield context
    context.close()


def sign_in(context: BrowserContext, server: DashboardServer, user: str = "ada") -> Page:
    page = context.new_page()
    page.goto(server.ui + "login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORDS[user])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Health at a glance")).to_be_visible()
    return page


def test_a_wrong_password_is_refused_and_the_right_one_signs_in(
    server: DashboardServer, context: BrowserContext
) -> None:
    """OPS-04, OPS-06: a wrong password shows the one refusal message and sets no session; the
    right one sets `tetra_session` Secure, HttpOnly, SameSite=Strict, for /ui/ only."""
    page = context.new_page()
    page.goto(server.ui)  # not signed in: sent to the login form
    expect(page).to_have_url(server.ui + "login?next=/ui/")
    page.get_by_label("User name").fill("ada")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    assert not [c for c in context.cookies() if c["name"] == "tetra_session"]
    page.get_by_label("Password").fill(PASSWORDS["ada"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Health at a glance")).to_be_visible()
    (cookie,) = [c for c in context.cookies() if c["name"] == "tetra_session"]
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui/"
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(server.ui + "audit")  # the session ended with the logout
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_the_login_form_works_with_the_keyboard_alone(server: DashboardServer, context: BrowserContext) -> None:
    """Accessibility: the form is reached, filled and sent with Tab and Enter; focus is visible."""
    page = context.new_page()
    page.goto(server.ui + "login")
    assert page.evaluate("document.activeElement.id") == "user"  # autofocus
    page.keyboard.press("Shift+Tab")  # before it, only the skip link
    assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "user"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # :focus-visible draws the focus ring
    page.keyboard.type("ada")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "password"
    page.keyboard.type(PASSWORDS["ada"])
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Health at a glance")).to_be_visible()


def _poll(server: DashboardServer, requester: scep_client.Requester) -> scep_client.CertRep:
    message = scep_client.cert_poll(
        requester, server.ra_certificate(), server.issuing_ca().subject, requester.certificate.subject
    )
    return server.exchange(message, requester, "/scep/held/pkiclient.exe")


def test_approving_a_held_scep_request_releases_the_devices_poll(
    server: DashboardServer, context: BrowserContext
) -> None:
    """SCEP-14 through the dashboard: the held request is in the queue; Approve (htmx, in place)
    and the device's next CertPoll gets its certificate."""
    requester, rep = enrol(server, "kiosk.example.com", challenge=HELD, path="/scep/held/pkiclient.exe")
    assert rep.status == scep_client.PENDING
    (request_id,) = server.pending_request_ids()
    page = sign_in(context, server, "officer")
    page.get_by_role("link", name="Approvals").click()
    row = page.locator(f"#request-{request_id}")
    expect(row).to_contain_text("kiosk.example.com")
    page.get_by_role("button", name=f"Approve request {request_id}").click()
    expect(page.locator(f"#request-{request_id}")).to_contain_text(f"Request {request_id} approved.")
    got = _poll(server, requester)
    assert got.status == scep_client.SUCCESS, got.fail_info_text
    assert got.certificate.public_key() == requester.key.public_key()
    assert server.pending_request_ids() == []


def test_rejecting_with_a_reason_and_a_stale_approval(server: DashboardServer, context: BrowserContext) -> None:
    """A rejection needs its reason and fails the device's poll; approving the same request
    from a page opened before is refused (409) and says why in the page's alert region."""
    requester, rep = enrol(server, "toaster.example.com", challenge=HELD, path="/scep/held/pkiclient.exe")
    assert rep.status == scep_client.PENDING
    (request_id,) = server.pending_request_ids()
    stale = sign_in(context, server, "officer")
    stale.goto(server.ui + "approvals")
    page = context.new_page()
    page.goto(server.ui + "approvals")
    page.get_by_label("Reason").fill("not a device of ours")
    page.get_by_role("button", name=f"Reject request {request_id}").click()
    expect(page.locator(f"#request-{request_id}")).to_contain_text(f"Request {request_id} rejected.")
    assert _poll(server, requester).status == scep_client.FAILURE
    stale.get_by_role("button", name=f"Approve request {request_id}").click()
    expect(stale.locator("#problems")).to_contain_text("409")
    expect(stale.locator("#problems")).to_contain_text("already rejected")


def test_reading_works_without_javascript(server: DashboardServer, browser: Browser) -> None:
    """With JavaScript off the pages are plain links and forms: sign in, search the inventory
    with the form's button, open a certificate, read the audit log."""
    context = browser.new_context(ignore_https_errors=True, java_script_enabled=False)
    try:
        page = sign_in(context, server)
        page.get_by_role("link", name="Inventory").click()
        page.get_by_label("Search by name").fill("example.com")
        page.get_by_role("button", name="Search").click()
        expect(page).to_have_url(re.compile(r"/ui/certificates\?q=example\.com$"))
        page.locator("#results").get_by_role("link").first.click()
        expect(page.locator("#subject")).to_contain_text("example.com")
        page.get_by_role("link", name="Audit log").click()
        expect(page.get_by_role("table")).to_contain_text("certificate.issued")
    finally:
        context.close()


def test_revoking_from_the_inventory_page_turns_ocsp_revoked(server: DashboardServer, context: BrowserContext) -> None:
    """Search the inventory as you type, open the certificate, revoke it: OCSP answers revoked
    (keyCompromise) and the page shows it."""
    _, rep = enrol(server, "printer.example.com", challenge=STATIC)
    assert rep.status == scep_client.SUCCESS
    certificate = rep.certificate
    assert isinstance(server.ocsp_status(certificate), ocsp.OCSPCertStatus)
    assert server.ocsp_status(certificate) == ocsp.OCSPCertStatus.GOOD
    page = sign_in(context, server, "officer")
    page.get_by_role("link", name="Inventory").click()
    page.get_by_label("Search by name").press_sequentially("printer.exa")
    link = page.locator("#results").get_by_role("link", name="CN=printer.example.com")
    expect(link).to_be_visible()  # htmx swapped the results in, no submit
    link.click()
    page.get_by_label("Reason").select_option("keyCompromise")
    page.get_by_role("button", name="Revoke this certificate").click()
    expect(page.locator("#status")).to_contain_text("revoked")
    assert eventually(lambda: server.ocsp_status(certificate) == ocsp.OCSPCertStatus.REVOKED)


def test_forms_are_refused_without_their_csrf_token_or_cross_site(
    server: DashboardServer, context: BrowserContext
) -> None:
    """OPS-04: with the session cookie but no token, a wrong token, or a cross-site Origin or
    Sec-Fetch-Site, a revocation is 403 and nothing is revoked."""
    _, rep = enrol(server, "camera.example.com", challenge=STATIC)
    page = sign_in(context, server)
    page.goto(server.ui + "certificates?q=camera.example.com")
    page.locator("#results").get_by_role("link", name="CN=camera.example.com").click()
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    assert token
    action = page.url + "/revoke"
    same = {"Origin": server.ui.removesuffix("/ui/")}
    refused = [
        page.request.post(action, form={"reason": "keyCompromise"}, headers=same),
        page.request.post(action, form={"reason": "keyCompromise", "csrf": "x" * len(token)}, headers=same),
        page.request.post(
            action, form={"reason": "keyCompromise", "csrf": token}, headers={"Origin": "https://evil.example"}
        ),
        page.request.post(
            action, form={"reason": "keyCompromise", "csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}
        ),
    ]
    assert [r.status for r in refused] == [403, 403, 403, 403]
    assert "CSRF" in refused[0].text() and "cross-site" in refused[2].text()
    assert server.ocsp_status(rep.certificate) == ocsp.OCSPCertStatus.GOOD
    page.reload()
    expect(page.locator("#status")).to_have_text("valid")


def _hostile_der(not_after: dt.datetime) -> bytes:
    """A stranger's certificate whose subject holds a script and whose SAN an escape sequence."""
    key = generate_private_key("ec-p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOSTILE_CN)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_after - dt.timedelta(days=60))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOSTILE_SAN)]), critical=False)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)


def _add_hostile_certificate(server: DashboardServer) -> tuple[int, str]:
    """The inventory id and subject (as RFC 4514 text) of the hostile certificate, added."""

    async def add() -> tuple[int, str]:
        ca = await build_ca(read_config(server.config, environ=server.env), open_signers=False)
        try:
            now = ca.clock.now()
            der = _hostile_der(now + dt.timedelta(days=20))
            (placed,) = await ca.inventory.add(
                [NewEntry(der, Source.IMPORTED, owner=HOSTILE_SAN)], actor="test", now=now
            )
            record = await ca.inventory.get(placed.id)
            assert record is not None
            return placed.id, record.subject
        finally:
            await ca.close()

    # Playwright's sync API keeps an event loop running in this thread: the store is used from another.
    with concurrent.futures.ThreadPoolExecutor(1) as worker:
        return worker.submit(asyncio.run, add()).result()


def test_a_script_in_a_subject_and_control_characters_show_as_text(
    server: DashboardServer, context: BrowserContext
) -> None:
    """OPS-09: a subject holding `<script>` and an owner holding an escape sequence are shown
    as text on the certificate page, the search results and the expiring timeline; nothing runs."""
    inventory_id, subject = _add_hostile_certificate(server)
    assert "<script" in subject
    dialogs: list[str] = []

    def seen(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    context.on("dialog", seen)
    page = sign_in(context, server)
    page.goto(f"{server.ui}certificates/{inventory_id}")
    expect(page.locator("#subject")).to_have_text(subject)
    expect(page.locator("#names")).to_have_text("dns:evil\\x1b[31m.example.com")
    expect(page.get_by_role("row", name="Owner")).to_contain_text("evil\\x1b[31m.example.com")
    page.goto(server.ui + "certificates?q=")
    expect(page.locator("#results")).to_contain_text(subject)
    page.goto(server.ui + "expiring")
    expect(page.locator("main")).to_contain_text(subject)
    assert page.locator("script").count() <= 1  # htmx's only
    assert dialogs == []


def test_the_scep_profile_mobileconfig_pins_the_issuing_ca(server: DashboardServer, context: BrowserContext) -> None:
    """The held profile's `.mobileconfig`: a com.apple.security.scep payload with the profile's
    SCEP URL, RSA 2048, and the SHA-256 of the issuing CA certificate as CAFingerprint."""
    page = sign_in(context, server)
    page.get_by_role("link", name="CAs and profiles").click()
    with page.expect_download() as download:
        page.get_by_role("link", name="held.mobileconfig").click()
    assert download.value.suggested_filename == "held.mobileconfig"
    document = plistlib.loads(Path(download.value.path()).read_bytes())
    (payload,) = document["PayloadContent"]
    assert payload["PayloadType"] == "com.apple.security.scep"
    scep = payload["PayloadContent"]
    assert scep["URL"].endswith("/scep/held")
    assert scep["CAFingerprint"] == server.issuing_ca().fingerprint(hashes.SHA256())
    assert scep["Keysize"] == 2048 and scep["Challenge"] == ""
    response = page.request.get(server.ui + "profiles/held.mobileconfig")
    assert response.headers["content-type"] == "application/x-apple-aspen-config"


MAIN_PAGES = {
    "health": "",
    "expiring": "expiring",
    "approvals": "approvals",
    "inventory": "certificates",
    "discovery": "discovery",
    "issuance": "issuance",
    "audit": "audit",
    "cas": "cas",
}


def test_screenshots_of_the_main_pages(server: DashboardServer, context: BrowserContext) -> None:
    """Every main page renders for an administrator (no error page), with header, nav and main
    landmarks; a full-page screenshot of each is kept under .artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = sign_in(context, server)
    for name, path in MAIN_PAGES.items():
        response = page.goto(server.ui + path)
        assert response is not None and response.status == 200, name
        for role in ("banner", "navigation", "main"):
            expect(page.get_by_role(role).first).to_be_visible()
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 1000
