"""SCEP-16: the validation webhook client against a real loopback HTTPS webhook.

Yes issues; a no (with its reason), a 4xx, a timeout, a closed port, a broken or oversize answer
and a TLS certificate that does not verify are each a `WebhookRefused`; a 5xx is retried and
the retry is counted at the server. The configuration keys refuse what would leak challenges
(plain HTTP off the host) or wait without bound.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from ca.errors import ConfigError
from ca.tomlread import Table
from protocols.scep.webhook import (
    MAX_ANSWER_BYTES,
    WebhookClient,
    WebhookQuery,
    WebhookRefused,
    WebhookSettings,
    parse_webhook,
)
from tests.helpers import make_csr
from tests.scep_webhook_server import YES, Answer, TlsFiles, WebhookServer, make_tls, webhook_server
from tests.tetra_process import free_port


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("webhook-tls"))


@pytest.fixture
def hook(tls: TlsFiles) -> Iterator[WebhookServer]:
    with webhook_server(YES, tls=tls) as server:
        yield server


QUERY = WebhookQuery(
    profile="device",
    transaction_id="7f3a",
    challenge="s3cret",
    csr_der=make_csr(["router1.example.com"])[0].public_bytes(Encoding.DER),
    subject="CN=router1.example.com",
    sans=("dns:router1.example.com",),
)


async def ask(url: str, tls: TlsFiles | None, *, timeout: float = 2.0, retries: int = 2) -> None:
    client = WebhookClient(WebhookSettings(url, timeout, retries, tls.ca if tls else None))
    try:
        await client.allows(QUERY)
    finally:
        await client.close()


async def refusal(url: str, tls: TlsFiles | None, **kwargs: float) -> str:
    with pytest.raises(WebhookRefused) as err:
        await ask(url, tls, **kwargs)  # type: ignore[arg-type]
    assert "s3cret" not in str(err.value)  # the challenge never reaches a log line
    return str(err.value)


async def test_scep16_yes_sends_the_documented_json(hook: WebhookServer, tls: TlsFiles) -> None:
    """SCEP-16: {"allow": true} is a yes; the body is the contract docs/scep.md documents."""
    await ask(hook.url, tls)
    [sent] = hook.queries
    assert sent == {
        "transaction_id": "7f3a",
        "profile": "device",
        "challenge": "s3cret",
        "csr": base64.b64encode(QUERY.csr_der).decode(),
        "subject": "CN=router1.example.com",
        "sans": ["dns:router1.example.com"],
    }


async def test_scep16_no_with_reason_is_final(hook: WebhookServer, tls: TlsFiles) -> None:
    """SCEP-16: {"allow": false, "reason": ...} refuses at once, reason kept (control characters masked)."""
    hook.script(Answer.verdict(allow=False, reason="device not in inventory\n"), YES)
    assert await refusal(hook.url, tls) == "webhook refused: device not in inventory?"
    assert len(hook.queries) == 1
    hook.script(Answer.verdict(allow=False))
    assert await refusal(hook.url, tls) == "webhook refused"


@pytest.mark.parametrize("status", [400, 403, 404, 302, 204])
async def test_scep16_4xx_and_other_statuses_refuse_without_retry(
    hook: WebhookServer, tls: TlsFiles, status: int
) -> None:
    """SCEP-16: a 4xx (or a redirect, or a 2xx other than 200) is a definite no: one request only."""
    hook.script(Answer(status, b'{"allow": true}'), YES)
    assert await refusal(hook.url, tls) == f"webhook answered HTTP {status}"
    assert len(hook.queries) == 1


async def test_scep16_5xx_is_retried_then_yes(hook: WebhookServer, tls: TlsFiles) -> None:
    """SCEP-16: 500 and 503 are retried; the third attempt's yes counts."""
    hook.script(Answer(500, b"oops"), Answer(503, b""), YES)
    await ask(hook.url, tls, retries=2)
    assert len(hook.queries) == 3


async def test_scep16_5xx_until_retries_run_out(hook: WebhookServer, tls: TlsFiles) -> None:
    """SCEP-16: after 1 + retries failed attempts the answer is a refusal naming the last failure."""
    hook.script(Answer(502, b""))
    assert await refusal(hook.url, tls, retries=1) == "webhook failed 2 time(s), last: HTTP 502"
    assert len(hook.queries) == 2


async def test_scep16_timeout_is_bounded(hook: WebhookServer, tls: TlsFiles) -> None:
    """SCEP-16: a webhook that never answers costs timeout x attempts (+ backoff), then refuses."""
    hook.script(Answer(delay=30))
    started = time.monotonic()
    reason = await refusal(hook.url, tls, timeout=0.5, retries=1)
    assert reason == "webhook failed 2 time(s), last: no answer within 0.5 s"
    assert len(hook.queries) == 2
    assert time.monotonic() - started < 0.5 * 2 + 2.0  # generous: a bound, not a benchmark


async def test_scep16_unreachable_port(tls: TlsFiles) -> None:
    """SCEP-16: nothing listening is retried, then refused."""
    reason = await refusal(f"https://127.0.0.1:{free_port()}/validate", tls, retries=1)
    assert reason.startswith("webhook failed 2 time(s), last: cannot reach the webhook")


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>yes</html>", "webhook answer is not JSON"),
        (b"\xff\xfe", "webhook answer is not JSON"),
        (b'["allow", true]', 'webhook answer has no boolean "allow"'),
        (b'{"allow": "yes"}', 'webhook answer has no boolean "allow"'),
        (b'{"allow": 1}', 'webhook answer has no boolean "allow"'),
        (b'{"allow": true, "allow": false}', "webhook answer has a duplicate member 'allow'"),
        (b"[" * 2000 + b"]" * 2000, "webhook answer is nested more than 16 levels deep"),
    ],
)
async def test_scep16_broken_answers_refuse(hook: WebhookServer, tls: TlsFiles, body: bytes, why: str) -> None:
    """SCEP-16: a 200 whose body is not a JSON object with a boolean allow is a no, not retried."""
    hook.script(Answer(200, body))
    assert await refusal(hook.url, tls) == why
    assert len(hook.queries) == 1


async def test_scep16_oversize_answer(hook: WebhookServer, tls: TlsFiles) -> None:
    """SCEP-16: an answer over MAX_ANSWER_BYTES is refused, even if it starts with a yes."""
    hook.script(Answer(200, b'{"allow": true, "pad": "' + b"x" * MAX_ANSWER_BYTES + b'"}'))
    assert await refusal(hook.url, tls) == f"webhook answer is over {MAX_ANSWER_BYTES} bytes"


async def test_scep16_wrong_tls_certificate(hook: WebhookServer, tmp_path: Path) -> None:
    """SCEP-16: a webhook whose certificate does not chain to webhook_ca_file is refused, not retried."""
    other = make_tls(tmp_path, "other")
    reason = await refusal(hook.url, other)
    assert reason.startswith("webhook TLS failed") and "certificate verify failed" in reason
    assert hook.queries == []
    # the system CAs do not vouch for a test CA either
    assert (await refusal(hook.url, None)).startswith("webhook TLS failed")


async def test_scep16_plain_http_to_loopback(tls: TlsFiles) -> None:
    """SCEP-16: http:// is accepted to a loopback address (a sidecar), and works."""
    with webhook_server(YES) as plain:
        await ask(plain.url, None)
        assert len(plain.queries) == 1


async def test_scep16_client_reused_across_queries(hook: WebhookServer, tls: TlsFiles) -> None:
    """SCEP-16: one client asks many times through its one session, and close() is repeatable."""
    client = WebhookClient(WebhookSettings(hook.url, 2.0, 0, tls.ca))
    for _ in range(3):
        await client.allows(QUERY)
    await client.close()
    await client.close()
    assert len(hook.queries) == 3


# -- configuration -----------------------------------------------------------


def profile_table(tmp_path: Path, **keys: object) -> Table:
    return Table(dict(keys), str(tmp_path / "tetra.toml"), "scep.profiles.device.")


def test_scep16_config_parsed(tmp_path: Path, tls: TlsFiles) -> None:
    """SCEP-16: the four keys, webhook_ca_file relative to the config file."""
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "ca.pem").write_bytes(tls.ca.read_bytes())
    table = profile_table(
        tmp_path,
        webhook_url="https://mdm.example.com/scep/validate",
        webhook_timeout=2,
        webhook_retries=0,
        webhook_ca_file="hooks/ca.pem",
    )
    settings = parse_webhook(table)
    table.finish()
    assert settings == WebhookSettings("https://mdm.example.com/scep/validate", 2.0, 0, tmp_path / "hooks" / "ca.pem")
    assert parse_webhook(profile_table(tmp_path)) is None
    default = parse_webhook(profile_table(tmp_path, webhook_url="http://[::1]:8080/v"))
    assert default == WebhookSettings("http://[::1]:8080/v")


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"webhook_url": "http://mdm.example.com/v"}, "webhook_url: plain http is allowed only to a loopback"),
        ({"webhook_url": "http://10.0.0.1/v"}, "webhook_url: plain http is allowed only to a loopback"),
        ({"webhook_url": "ftp://mdm.example.com/v"}, "webhook_url: must be an https:// URL"),
        ({"webhook_url": "mdm.example.com"}, "webhook_url: must be an https:// URL"),
        ({"webhook_url": "https://u:p@mdm.example.com/"}, "webhook_url: must not carry credentials"),
        ({"webhook_url": "https://mdm.example.com:99999/"}, "webhook_url: not a URL"),
        ({"webhook_url": "https://h/", "webhook_timeout": 0}, "webhook_timeout: must be over 0"),
        ({"webhook_url": "https://h/", "webhook_timeout": 600}, "webhook_timeout: must be over 0"),
        ({"webhook_url": "https://h/", "webhook_retries": -1}, "webhook_retries: must be 0 to 5"),
        ({"webhook_url": "https://h/", "webhook_retries": 9}, "webhook_retries: must be 0 to 5"),
        ({"webhook_url": "https://h/", "webhook_retries": "2"}, "webhook_retries: expected integer"),
        ({"webhook_url": "https://h/", "webhook_ca_file": "nope.pem"}, "webhook_ca_file: "),
        ({"webhook_timeout": 3}, "webhook_timeout: set without webhook_url"),
    ],
)
def test_scep16_config_errors(tmp_path: Path, keys: dict[str, object], message: str) -> None:
    """SCEP-16: each mistake is a ConfigError naming the file and the key."""
    with pytest.raises(ConfigError) as err:
        parse_webhook(profile_table(tmp_path, **keys))
    assert f"tetra.toml: scep.profiles.device.{message}" in str(err.value)


def test_scep16_ca_file_that_is_not_pem(tmp_path: Path) -> None:
    """SCEP-16: a webhook_ca_file holding no certificate is refused when the config is read."""
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"webhook_ca_file: .*cannot load CA certificates"):
        parse_webhook(profile_table(tmp_path, webhook_url="https://h/", webhook_ca_file="junk.pem"))


def test_scep16_client_refuses_plain_http_off_host() -> None:
    """SCEP-16: the client re-checks the URL, so settings built in code cannot skip the rule."""
    with pytest.raises(ConfigError, match="plain http is allowed only to a loopback"):
        WebhookClient(WebhookSettings("http://mdm.example.com/v"))
