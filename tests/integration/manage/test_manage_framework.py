"""The management API's framework, through the whole app served in-process: the OpenAPI
document made from the endpoint tuple (OPS-01), tokens refused alike with one log line each
(OPS-05), permissions (403), every refusal a problem document (OPS-12: schema, malformed and
oversized JSON, aiohttp's own 404/405/413), and the listener gate."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from openapi_spec_validator import validate as validate_openapi

from server.manage.api import ENDPOINTS
from server.manage.api import requests as requests_api
from server.manage.role_table import BEGIN, END, generated_section
from tests.helpers import make_csr
from tests.integration.manage.conftest import Serve, manage_config
from tests.integration.manage.manage_support import audit_rows, last_seq, problem
from tests.operator_tokens import bearer, make_token

DOCS = Path(__file__).parents[3] / "docs" / "api.md"


def enroll_body(name: str = "www.example.com") -> dict[str, str]:
    csr, _ = make_csr([name])
    return {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server"}


async def test_openapi_document_is_made_from_the_validating_schemas(
    serve: Serve, ca_dir: Path, sqlite_url: str
) -> None:
    """OPS-01: GET /api/v1/openapi.json answers without a token, is valid OpenAPI 3.1, lists
    every declared endpoint with its permission, and its request schemas are the very ones the
    router validates with."""
    client, _ = await serve(manage_config(ca_dir, sqlite_url))
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    document = await resp.json()
    validate_openapi(document)
    for endpoint in ENDPOINTS:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        assert operation["operationId"] == endpoint.operation_id
        if endpoint.permission is not None:
            assert operation["x-permission"] == endpoint.permission.value
        if endpoint.body is not None:
            assert operation["requestBody"]["content"]["application/json"]["schema"] == endpoint.body
    operations = sum(len(methods) for methods in document["paths"].values())
    assert operations == len(ENDPOINTS)


def test_role_table_in_the_docs_is_the_generated_one() -> None:
    """OPS-01: docs/api.md's role table is what `python -m server.manage.role_table` makes from
    the endpoint tuple and ROLE_PERMISSIONS; regenerate it after changing either."""
    text = DOCS.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == generated_section(ENDPOINTS)


async def test_tokens_refused_alike_with_one_log_line_each(
    serve: Serve, ca_dir: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """OPS-05: no token, an unknown one, a forged one, a revoked one: 401 with the Bearer
    challenge and the same detail; one INFO line each says why; nothing is issued."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    revoked = await make_token(ca, "administrator", name="gone")
    [token] = await ca.operators.tokens.list("gone")
    await ca.operators.tokens.revoke(token.id, actor="test")
    good = await make_token(ca, "administrator")
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    before = await last_seq(ca)
    cases = {"unknown": "tetra_" + "x" * 43, "forged": forged, "revoked": revoked}
    for reason, secret in cases.items():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="tetra.manage"):
            resp = await client.post("/api/v1/enroll", json=enroll_body(), headers=bearer(secret))
        body = await problem(resp, 401, "unauthenticated")
        assert body["detail"] == "invalid token", reason
        assert resp.headers["WWW-Authenticate"].startswith('Bearer realm="tetra-api"')
        lines = [r.getMessage() for r in caplog.records if r.name == "tetra.manage"]
        assert len(lines) == 1, (reason, lines)
        assert ("revoked" if reason == "revoked" else "unknown") in lines[0]
    resp = await client.post("/api/v1/enroll", json=enroll_body())
    await problem(resp, 401, "unauthenticated")
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="tetra-api"'
    assert await audit_rows(ca, before) == []


async def test_permissions_bodies_and_aiohttp_refusals_are_problems(
    serve: Serve, ca_dir: Path, sqlite_url: str
) -> None:
    """A role without the endpoint's permission: 403. OPS-12: a body breaking its schema names
    the member; malformed JSON, an oversized body, no such path or method: problem documents
    too, and nothing is issued or stored. A served enrolment answers 201 and its audit events
    carry the acting user (OPS-07)."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    auditor = bearer(await make_token(ca, "auditor"))
    admin = bearer(await make_token(ca, "administrator", name="alice"))
    before = await last_seq(ca)

    body = await problem(await client.post("/api/v1/enroll", json=enroll_body(), headers=auditor), 403, "forbidden")
    assert "certificates.request" in body["detail"]
    wrong = {**enroll_body(), "inventory": {"owner": {"name": "x"}}}
    body = await problem(await client.post("/api/v1/enroll", json=wrong, headers=admin), 400, "invalid-body")
    assert body["detail"] == "body.inventory.owner must be of type string or null"
    extra = {**enroll_body(), "color": "red"}
    body = await problem(await client.post("/api/v1/enroll", json=extra, headers=admin), 400, "invalid-body")
    assert "'color'" in body["detail"]
    body = await problem(await client.post("/api/v1/enroll", data=b'{"csr": ', headers=admin), 400, "malformed")
    assert body["detail"] == "the body is not JSON"
    dup = b'{"csr": "a", "csr": "b", "profile": "tls-server"}'
    await problem(await client.post("/api/v1/enroll", data=dup, headers=admin), 400, "malformed")
    huge = json.dumps({**enroll_body(), "profile": "p" * 200_000}).encode()
    await problem(await client.post("/api/v1/enroll", data=huge, headers=admin), 413, "too-large")
    await problem(await client.get("/api/v1/nothing-here", headers=admin), 404, "not-found")
    resp = await client.delete("/api/v1/enroll", headers=admin)
    await problem(resp, 405, "method-not-allowed")
    assert "POST" in resp.headers["Allow"]
    await problem(await client.get("/api/v1/requests/12x", headers=admin), 400, "malformed")
    assert await audit_rows(ca, before) == []

    resp = await client.post("/api/v1/enroll", json=enroll_body(), headers=admin)
    assert resp.status == 201, await resp.text()
    assert resp.headers["Cache-Control"] == "no-store"
    issued = await resp.json()
    assert set(issued) == {"serial", "issuer", "certificate", "chain"}
    rows = await audit_rows(ca, before)
    assert rows and {row.actor for row in rows} == {"user:alice"}
    assert (await ca.audit.verify()).ok


async def test_management_paths_answer_only_on_their_listeners(serve: Serve, ca_dir: Path, sqlite_url: str) -> None:
    """The management plane is not on the public listeners unless [manage] also_on names them;
    the manage listener serves nothing else."""
    public, _ = await serve(manage_config(ca_dir, sqlite_url), "http")
    resp = await public.get("/api/v1/openapi.json")
    assert resp.status == 404 and resp.content_type != "application/problem+json"
    assert (await public.get("/healthz")).status == 200

    own, _ = await serve(manage_config(ca_dir, sqlite_url))
    assert (await own.get("/healthz")).status == 404
    assert (await own.get("/api/v1/openapi.json")).status == 200

    also, _ = await serve(manage_config(ca_dir, sqlite_url, TETRA_MANAGE__ALSO_ON='["http"]'), "http")
    assert (await also.get("/api/v1/openapi.json")).status == 200
    assert (await also.get("/healthz")).status == 200

    off, _ = await serve(manage_config(ca_dir, sqlite_url, TETRA_MANAGE__LISTEN='""'))
    assert (await off.get("/api/v1/openapi.json")).status == 404


class PlantedBug(RuntimeError):
    """The exception no handler expects."""


async def test_a_bug_in_a_handler_is_a_problem_500_logged_once(
    serve: Serve, ca_dir: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """DOS-15: a handler that fails unexpectedly answers a problem document 500 that says no
    more, one log line per request, the traceback once for its site."""
    client, ca = await serve(manage_config(ca_dir, sqlite_url))
    auth = bearer(await make_token(ca, "administrator"))

    def planted(*args: object, **kwargs: object) -> None:
        raise PlantedBug("a bug reached by this request")

    monkeypatch.setattr(requests_api, "page", planted)
    caplog.set_level(logging.INFO)
    for _ in range(3):
        body = await problem(await client.get("/api/v1/requests", headers=auth), 500, "internal")
        assert body["detail"] == "internal server error"
    lines = [r for r in caplog.records if r.name == "tetra.http" and "failed unexpectedly" in r.getMessage()]
    assert len(lines) == 3 and lines[0].getMessage().startswith("api ")
    assert len([r for r in lines if r.exc_info]) == 1
