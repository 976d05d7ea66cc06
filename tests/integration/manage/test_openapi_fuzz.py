"""OPS-08: schemathesis against the management API's own OpenAPI description.

The whole app is served in process, on a free port, through the manage listener (as `tetra
serve` accepts it), on the demo CA's SQLite store with a few certificates and held requests
already in it. schemathesis reads GET /api/v1/openapi.json from that server and, for every
operation it lists, sends requests generated from the operation's schemas (what they allow,
and what they do not: schemathesis's positive and negative modes) as an administrator and as
a requester of one team; path ids are random strings, or the ids of objects that exist.
Each answer must pass four checks: no 5xx (`not_a_server_error`), a status the operation
documents (`status_code_conformance`; a refusal is the documented `default` problem), the
documented media type (`content_type_conformance`) and a body valid under the documented
schema (`response_schema_conformance`).

The run is bounded and reproducible: EXAMPLES cases per operation and token, derandomized, no
example database. The server runs on its own event loop in a thread, since schemathesis calls
it synchronously (requests). Every certificate the run issued is linted afterwards.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from server.app import CA, build_app
from server.manage.api import ENDPOINTS
from tests.conftest import lint_everything_issued
from tests.helpers import make_csr
from tests.integration.manage.conftest import manage_config
from tests.integration.manage.manage_support import add_profile
from tests.manage_server import ListenerTestServer
from tests.operator_tokens import bearer, make_token

EXAMPLES = 20  # generated cases per operation and token: ~45 s in all on a loaded 2-core machine
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
T = TypeVar("T")


class ServedApp:
    """The app on its own event loop in a thread, through the manage listener on a free port."""

    def __init__(self, ca_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="served-app", daemon=True)
        self.thread.start()
        self.server = ListenerTestServer(build_app(manage_config(ca_dir, f"sqlite:///{ca_dir / 'tetra.db'}")))
        self.run(self.server.start_server(loop=self.loop))
        self.base = f"http://127.0.0.1:{self.server.port}/api/v1"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        try:
            self.run(lint_everything_issued(self.server.app[CA]))
        finally:
            self.run(self.server.close())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()


@dataclass(frozen=True)
class Existing:
    """What the fuzzer can aim at besides random ids: certificates and held requests."""

    certificates: list[int]
    requests: list[int]


def _order(name: str, profile: str, team: str) -> dict[str, Any]:
    csr, _ = make_csr([name])
    return {"profile": profile, "csr": csr.public_bytes(Encoding.PEM).decode(), "team": team}


def _populate(base: str, auth: dict[str, str]) -> Existing:
    """Three certificates and three held requests, made through the API itself."""
    held = []
    for i in range(3):
        issued = requests.post(
            f"{base}/certificates", json=_order(f"c{i}.example.com", "tls-server", "web"), headers=auth
        )
        assert issued.status_code == 201, issued.text
        held_request = requests.post(
            f"{base}/certificates", json=_order(f"h{i}.example.com", "held", "web"), headers=auth
        )
        assert held_request.status_code == 202, held_request.text
        held.append(int(held_request.json()["request_id"]))
    listed = requests.get(f"{base}/certificates", headers=auth)
    assert listed.status_code == 200, listed.text
    ours = [item for item in listed.json()["items"] if item["subject"].endswith(".example.com")]  # not the CA's own
    certificates = [int(item["id"]) for item in ours]
    assert len(certificates) == 3, listed.json()
    return Existing(certificates, held)


@pytest.fixture(scope="module")
def served(
    template_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServedApp, Existing, dict[str, dict[str, str]]]]:
    """The served app, what exists in it, and the Authorization headers of its two users."""
    import shutil

    ca_dir = tmp_path_factory.mktemp("openapi-fuzz") / "ca"
    shutil.copytree(template_dir, ca_dir)
    add_profile(ca_dir, "held", approval="manual")
    app = ServedApp(ca_dir)
    try:
        ca = app.server.app[CA]
        tokens = {
            "administrator": bearer(app.run(make_token(ca, "administrator", name="fuzz-admin"))),
            "requester": bearer(app.run(make_token(ca, "requester", name="fuzz-requester", teams=["web"]))),
        }
        yield app, _populate(app.base, tokens["administrator"]), tokens
    finally:
        app.close()


def _operations(base: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an operation schemathesis cannot read is a bug too
        operations.append(result.ok())
    return operations


def _strategy(operation: Any, existing: Existing) -> st.SearchStrategy[Any]:
    """Cases for ``operation``: generated from its schemas (valid, and invalid: those must be
    refused as documented), and, for an operation on one object, valid ones with the id of an
    object that exists (a random string is nearly always a 400)."""
    generated = st.one_of(operation.as_strategy(), operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    if "{id}" not in operation.path:
        return generated
    ids = existing.requests if operation.path.startswith("/requests") else existing.certificates
    real = st.one_of(*(operation.as_strategy(path_parameters={"id": str(i)}) for i in ids))
    return st.one_of(generated, real)


def _fuzz(
    operation: Any, existing: Existing, base: str, auth: dict[str, str], session: requests.Session
) -> Callable[[], None]:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(_strategy(operation, existing))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base, session=session, headers=auth, checks=CHECKS)

    return run


@pytest.mark.parametrize("role", ["administrator", "requester"])
def test_every_operation_keeps_its_published_contract(
    served: tuple[ServedApp, Existing, dict[str, dict[str, str]]], role: str
) -> None:
    """OPS-08: every operation of the OpenAPI document, fuzzed as ``role``: no 5xx, and every
    answer's status, media type and body as the document says."""
    app, existing, tokens = served
    operations = _operations(app.base)
    # Every endpoint; schemathesis leaves out the document it was loaded from, which it just read.
    assert {op.label for op in operations} == {f"{e.method} {e.path}" for e in ENDPOINTS} - {"GET /openapi.json"}
    # One session (its keep-alive connections reused) for the whole run: a session per operation
    # left ~100 idle connections open, past the listener's 64 per address, and the server
    # rightly refused more.
    with requests.Session() as session:
        for operation in operations:
            _fuzz(operation, existing, app.base, tokens[role], session)()
