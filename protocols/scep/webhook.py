"""The SCEP validation webhook (SCEP-16): an outside service judges each enrolment, as Intune does.

When a profile names a ``webhook_url``, the webhook alone decides whether a PKCSReq's challenge
and CSR may be issued. Tetra POSTs one JSON object per request (docs/scep.md, "Validation
webhook")::

    {"transaction_id": "...", "profile": "device", "challenge": "...",
     "csr": "<standard base64 of the PKCS#10 DER, no line breaks>",
     "subject": "CN=router1,O=Example" (RFC 4514), "sans": ["dns:router1.example.com"]}

and issues only on ``200`` with ``{"allow": true}``. ``{"allow": false, "reason": "..."}`` and
any 4xx are a definite no (never retried); a 5xx, a timeout or a refused connection is retried
``retries`` times after a short backoff, then refused. Anything else (a redirect, a body that is
not a JSON object, an answer over `MAX_ANSWER_BYTES`, a TLS certificate that does not verify) is
a refusal: the webhook fails closed, and its worst case costs ``timeout`` × attempts plus the
backoffs. The URL must be HTTPS, except to a loopback address (a sidecar on the same host).

aiohttp is used as a client only (import-linter allows this one module to import it).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from ca.errors import ConfigError
from ca.tomlread import Table
from protocols.json_body import JsonRefused, decode

MAX_ANSWER_BYTES = 4096  # {"allow": false, "reason": "..."} fits many times over
MAX_REASON_CHARS = 200  # of the webhook's reason, kept for failInfoText and the log
MAX_TIMEOUT = 60.0
MAX_RETRIES = 5
BACKOFF = 0.1  # seconds before the first retry, doubled before each next one
USER_AGENT = "Tetra-SCEP-webhook/1"


class WebhookRefused(Exception):
    """The webhook said no, or could not be asked (timeout, unreachable, a broken answer).
    ``str(exc)`` says why, for failInfoText and the log; it never contains the challenge."""


@dataclass(frozen=True)
class WebhookSettings:
    url: str
    timeout: float = 5.0  # seconds for one attempt, connection to last byte
    retries: int = 2  # further attempts after a 5xx, a timeout or a refused connection
    ca_file: Path | None = None  # PEM anchors for the webhook's TLS certificate (None: the system's)


@dataclass(frozen=True)
class WebhookQuery:
    profile: str
    transaction_id: str
    challenge: str
    csr_der: bytes
    subject: str  # RFC 4514
    sans: tuple[str, ...]  # "dns:name", "ip:address"... as ca/csr.py names identifiers

    def body(self) -> dict[str, Any]:
        """The JSON object the webhook receives (the contract in this module's docstring)."""
        return {
            "transaction_id": self.transaction_id,
            "profile": self.profile,
            "challenge": self.challenge,
            "csr": base64.b64encode(self.csr_der).decode("ascii"),
            "subject": self.subject,
            "sans": list(self.sans),
        }


def url_problem(url: str) -> str | None:
    """Why ``url`` may not be a webhook URL, or None. Plain HTTP would carry challenges in the
    clear, so it is allowed only to a loopback address, where nothing crosses a network."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL with a host"
    if parts.username or parts.password:
        return "must not carry credentials in the URL"
    if parts.scheme == "http" and not _is_loopback(host):
        return "plain http is allowed only to a loopback address (127.0.0.1, ::1, localhost); use https"
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Verifies the webhook's certificate and host name against ``ca_file`` (or the system CAs)."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{ca_file}: cannot load CA certificates: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def parse_webhook(table: Table) -> WebhookSettings | None:
    """The webhook keys of one [scep.profiles.<p>] table; None when ``webhook_url`` is empty."""
    url = table.get("webhook_url", str, "")
    timeout = table.get("webhook_timeout", float, 5.0)
    retries = table.get("webhook_retries", int, 2)
    ca_name = table.get("webhook_ca_file", str, "")
    if not url:
        for key in ("webhook_timeout", "webhook_retries", "webhook_ca_file"):
            if table.has(key):
                raise table.error(key, "set without webhook_url")
        return None
    problem = url_problem(url)
    if problem:
        raise table.error("webhook_url", problem)
    if not 0 < timeout <= MAX_TIMEOUT:
        raise table.error("webhook_timeout", f"must be over 0 and at most {MAX_TIMEOUT:g} seconds")
    if not 0 <= retries <= MAX_RETRIES:
        raise table.error("webhook_retries", f"must be 0 to {MAX_RETRIES}")
    ca_file = None
    if ca_name:
        ca_file = Path(table.source).parent / ca_name
        if not ca_file.is_file():
            raise table.error("webhook_ca_file", f"{ca_file} is not a file")
        try:
            tls_context(ca_file)
        except ConfigError as exc:
            raise table.error("webhook_ca_file", str(exc)) from None
    return WebhookSettings(url, timeout, retries, ca_file)


class _Retry(Exception):
    """One attempt failed in a way another attempt may not (5xx, timeout, connection)."""


class WebhookClient:
    """Asks one profile's webhook; one HTTP session (and its connection pool) per client."""

    def __init__(self, settings: WebhookSettings) -> None:
        problem = url_problem(settings.url)
        if problem:
            raise ConfigError(f"webhook_url {settings.url!r}: {problem}")
        self.settings = settings
        self._context = tls_context(settings.ca_file)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop (aiohttp binds a session to its loop).
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._context, limit=32),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                headers={"User-Agent": USER_AGENT},
                trust_env=False,  # no proxy from the environment sees the challenges
            )
        return self._session

    async def allows(self, query: WebhookQuery) -> None:
        """Returns when the webhook says yes; raises WebhookRefused otherwise."""
        body = json.dumps(query.body()).encode()
        attempts = 1 + self.settings.retries
        delay = BACKOFF
        for attempt in range(1, attempts + 1):
            try:
                return await self._ask(body)
            except _Retry as exc:
                if attempt == attempts:
                    raise WebhookRefused(f"webhook failed {attempts} time(s), last: {exc}") from None
            await asyncio.sleep(delay)
            delay *= 2

    async def _ask(self, body: bytes) -> None:
        session = self._open()
        try:
            async with session.post(
                self.settings.url,
                data=body,
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                allow_redirects=False,
            ) as response:
                if response.status >= 500:
                    raise _Retry(f"HTTP {response.status}")
                if response.status != 200:
                    raise WebhookRefused(f"webhook answered HTTP {response.status}")
                answer = await _read_bounded(response)
        except aiohttp.ClientSSLError as exc:
            raise WebhookRefused(f"webhook TLS failed: {_why(exc)}") from None
        except TimeoutError:
            raise _Retry(f"no answer within {self.settings.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise _Retry(f"cannot reach the webhook: {_why(exc)}") from None
        _judge(answer)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _read_bounded(response: aiohttp.ClientResponse) -> bytes:
    """At most `MAX_ANSWER_BYTES` of the answer; a longer one is refused unread."""
    if (response.content_length or 0) > MAX_ANSWER_BYTES:
        raise WebhookRefused(f"webhook answer is over {MAX_ANSWER_BYTES} bytes")
    data = bytearray()
    while chunk := await response.content.read(MAX_ANSWER_BYTES + 1 - len(data)):
        data += chunk
        if len(data) > MAX_ANSWER_BYTES:
            raise WebhookRefused(f"webhook answer is over {MAX_ANSWER_BYTES} bytes")
    return bytes(data)


def _judge(answer: bytes) -> None:
    """A 200 answer: yes only for a JSON object whose ``allow`` is true."""
    try:
        verdict = decode(answer)
    except JsonRefused as exc:
        raise WebhookRefused(f"webhook answer {exc}") from None
    if not isinstance(verdict, dict) or not isinstance(verdict.get("allow"), bool):
        raise WebhookRefused('webhook answer has no boolean "allow"')
    if verdict["allow"]:
        return
    reason = verdict.get("reason")
    if isinstance(reason, str) and reason:
        printable = "".join(c if c.isprintable() else "?" for c in reason[:MAX_REASON_CHARS])
        raise WebhookRefused(f"webhook refused: {printable}")
    raise WebhookRefused("webhook refused")


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
