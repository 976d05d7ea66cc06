"""A handler that fails unexpectedly (DOS-15), through the app (pytest-aiohttp): the client gets
its protocol's own 500, each request logs one line with the traceback at most once per site,
and the source is charged as for any refusal (ACME answers 429 once over its budget).

The failure is a bug planted in a handler (monkeypatch), standing for those this change fixed:
a '²' id, a RecursionError, an integer too large for its column."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509 import ocsp

from protocols.acme import certificates
from protocols.crl import codec as crl_codec
from protocols.ocsp.handlers import OcspHandlers
from server.app import METRICS
from tests.unit.protocols.acme.support import AcmeEnv, start_env

pytest_plugins = ["tests.unit.protocols.acme.support"]

BUDGET = 100  # refused requests a minute from one source before ACME answers 429 unread
FLOOD = 700


class PlantedBug(RuntimeError):
    """The exception no handler expects."""


def planted(*args: Any, **kwargs: Any) -> Any:
    raise PlantedBug("a bug reached by this request")


def planted_elsewhere(*args: Any, **kwargs: Any) -> Any:
    raise PlantedBug("a bug at another site")


def planted_at_a_third_site(*args: Any, **kwargs: Any) -> Any:
    raise PlantedBug("a bug at a third site")


def failure_records(caplog: pytest.LogCaptureFixture) -> tuple[list[logging.LogRecord], list[logging.LogRecord]]:
    """(one-line records of unexpected failures, those of them that carry a traceback)."""
    lines = [r for r in caplog.records if r.name == "tetra.http" and "failed unexpectedly" in r.getMessage()]
    return lines, [r for r in lines if r.exc_info]


@pytest.fixture
async def env(aiohttp_client: Any, ca_dir: Path, loopback: Any, monkeypatch: pytest.MonkeyPatch) -> AcmeEnv:
    return await start_env(
        aiohttp_client,
        ca_dir,
        f"sqlite:///{ca_dir / 'tetra.db'}",
        loopback,
        {
            "TETRA_SERVER__PROTOCOLS": '["acme", "ocsp", "crl"]',
            "TETRA_OCSP__RESPONDER_COUNTRY": "US",
            "TETRA_ACME__RATE_LIMITS__REFUSALS_PER_MINUTE": str(BUDGET),
        },
    )


async def test_acme_flood_on_a_bug_logs_one_traceback_and_is_braked(
    env: AcmeEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DOS-15 (with LOAD-05): 700 unauthenticated requests that all reach the same bug: each is
    a serverInternal problem document (500) until the source's refusal budget is spent, then a
    rateLimited 429 with Retry-After that never reaches the handler; one log line per 500, and
    one traceback in all (there were 700 tracebacks and 700 plain-text 500s, no 429)."""
    monkeypatch.setattr(certificates, "renewal_info", planted)
    caplog.set_level(logging.INFO)

    async def one(_: int) -> tuple[int, str, str]:
        resp = await env.http.get("/acme/renewal-info/abc.def")
        body = await resp.json(content_type=None)
        return resp.status, resp.headers["Content-Type"], str(body["type"]).rsplit(":", 1)[-1]

    results: list[tuple[int, str, str]] = []
    for start in range(0, FLOOD, 50):
        results += await asyncio.gather(*(one(i) for i in range(start, min(FLOOD, start + 50))))
    assert {content_type for _, content_type, _ in results} == {"application/problem+json"}
    failed = [r for r in results if r[0] == 500]
    braked = [r for r in results if r[0] == 429]
    assert len(failed) + len(braked) == FLOOD
    assert {kind for _, _, kind in failed} == {"serverInternal"}
    assert {kind for _, _, kind in braked} == {"rateLimited"}
    assert BUDGET <= len(failed) < FLOOD / 2, len(failed)  # the budget, plus what drained meanwhile
    assert results[-1][0] == 429
    lines, tracebacks = failure_records(caplog)
    assert len(lines) == len(failed)
    assert len(tracebacks) == 1
    assert "PlantedBug" in lines[0].getMessage() and "from 127.0.0.1" in lines[0].getMessage()
    assert any("refused unread for a while" in r.getMessage() for r in caplog.records)
    metrics = env.app[METRICS].render().decode()
    assert f'tetra_errors_total{{protocol="acme",reason="unexpected"}} {len(failed)}.0' in metrics


async def test_ocsp_and_crl_answer_a_bug_in_their_own_words(
    env: AcmeEnv, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DOS-15: OCSP (on the aiohttp route) answers an OCSP internalError, the CRL a plain-text
    500; each request one log line, one traceback per site. (The management API's problem
    document 500: tests/integration/manage/test_manage_framework.py.)"""
    monkeypatch.setattr(OcspHandlers, "answer_now", planted_elsewhere)
    monkeypatch.setattr(crl_codec, "decode_path", planted_at_a_third_site)
    caplog.set_level(logging.INFO)
    for _ in range(5):
        answer = await env.http.post("/ocsp", data=b"0", headers={"Content-Type": "application/ocsp-request"})
        assert answer.status == 200 and answer.headers["Content-Type"] == "application/ocsp-response"
        status = ocsp.load_der_ocsp_response(await answer.read()).response_status
        assert status == ocsp.OCSPResponseStatus.INTERNAL_ERROR
        crl = await env.http.get("/crl/issuing-ca.crl")
        assert crl.status == 500 and crl.headers["Content-Type"].startswith("text/plain")
        assert await crl.text() == "internal server error\n"
    lines, tracebacks = failure_records(caplog)
    assert len(lines) == 10
    assert len(tracebacks) == 2  # one per planted site
    assert {line.getMessage().split(" ")[0] for line in lines} == {"ocsp", "crl"}
