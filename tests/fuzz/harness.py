"""What every fuzz test shares: the app under test, the invariants, the example budget.

The invariant for every input, whatever the entry point (DOS-06):
  * the answer is the protocol's own: an ACME problem document, the API's problem document, an OCSP
    response, a valid answer; never a 5xx, never aiohttp's plain-text 500;
  * nothing reaches the log at ERROR and no traceback is written;
  * the request finishes within REQUEST_SECONDS (bounded time);
  * a refused request stores nothing (no certificate, request, account, order or credential).

The budget: `make test` runs TETRA_FUZZ_EXAMPLES examples per target (100 by default); `make fuzz`
runs many more. Each target's count and time are printed at the end of the session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from interop.acme_helpers import Http01Responder, LoopbackDns
from server.app import CA, build_app
from server.wiring import read_config
from tests.manage_server import ListenerTestServer
from tests.operator_tokens import make_token

EXAMPLES = int(os.environ.get("TETRA_FUZZ_EXAMPLES", "100"))
REQUEST_SECONDS = 10.0
# What a refused request must not have written.
STORED_TABLES = ("certificates", "enrollment_requests", "acme_accounts", "acme_orders", "credentials")
# (examples run, seconds spent) per target, printed by tests/fuzz/conftest.py.
STATS: dict[str, list[float]] = {}


def fuzz_settings(scale: float = 1.0) -> settings:
    """Hypothesis settings for one target: the budget times `scale`, no deadline per example
    (REQUEST_SECONDS bounds each request instead), no example database in the repository."""
    return settings(
        max_examples=max(1, int(EXAMPLES * scale)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip()

    def json_object(self, content_type: str) -> dict[str, Any] | None:
        """The body as a JSON object when it is declared as ``content_type`` and is one; else None
        (how each protocol's own error format is recognised)."""
        if self.content_type != content_type:
            return None
        try:
            body = json.loads(self.body)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None


class LogWatch(logging.Handler):
    """Collects every record at ERROR or above and every record that carries a traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            self.bad.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@dataclass
class FuzzApp:
    """The real app (real SQLite store, real validation) on a private event loop."""

    loop: asyncio.AbstractEventLoop
    http: TestClient[Any, Any]
    db_url: str
    logs: LogWatch
    token: str  # an administrator's, for the management API
    examples: int = 0
    _engine: sqlalchemy.Engine | None = field(default=None, repr=False)

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Reply:
        """One request, which must finish within REQUEST_SECONDS."""

        async def send() -> Reply:
            async with self.http.request(method, path, data=body, headers=headers or {}) as resp:
                return Reply(resp.status, dict(resp.headers), await resp.read())

        reply: Reply = self.run(asyncio.wait_for(send(), REQUEST_SECONDS))
        return reply

    def stored(self) -> dict[str, int]:
        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self.db_url)
        with self._engine.connect() as conn:
            return {t: conn.execute(sqlalchemy.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in STORED_TABLES}

    def check(self, send: Callable[[], Reply], is_own_error: Callable[[Reply], bool]) -> Reply:
        """Send one input and check the invariant; `is_own_error` says whether a refusal is in
        the protocol's own format."""
        self.examples += 1
        before = self.stored()
        logged = len(self.logs.bad)
        reply = send()
        assert reply.status < 500 or is_own_error(reply), (reply.status, reply.body[:300])
        assert "text/plain" not in reply.content_type or reply.status < 400 or is_own_error(reply), reply
        if reply.status >= 400:
            assert is_own_error(reply), (reply.status, reply.headers, reply.body[:300])
            assert self.stored() == before, "a refused request stored something"
        assert not self.logs.bad[logged:], self.logs.bad[logged : logged + 3]
        return reply


@contextmanager
def fuzz_app(name: str, ca_dir: Path, extra: dict[str, str] | None = None) -> Iterator[FuzzApp]:
    """The app with every protocol that takes untrusted input, on the demo CA's SQLite store,
    its refusal budget out of the way (a 429 is a correct answer, but a fuzzer that gets only
    429s tests nothing). Records the target's examples and time in STATS."""
    with _app(name, ca_dir, extra) as app:
        yield app


@contextmanager
def _app(name: str, ca_dir: Path, extra: dict[str, str] | None) -> Iterator[FuzzApp]:
    dns, http01 = LoopbackDns().start(), Http01Responder().start()
    db_url = f"sqlite:///{ca_dir / 'tetra.db'}"
    environ = {
        "TETRA_DATABASE__URL": db_url,
        "TETRA_SERVER__PROTOCOLS": '["acme", "ocsp", "crl"]',
        "TETRA_MANAGE__ALSO_ON": '["http"]',  # the management API beside the protocols, as a test server
        "TETRA_ACME__VALIDATION__HTTP_PORT": str(http01.port),
        "TETRA_ACME__VALIDATION__RESOLVER": dns.address,
        "TETRA_ACME__VALIDATION__TIMEOUT": "2",
        "TETRA_ACME__RATE_LIMITS__REFUSALS_PER_MINUTE": "1000000000",
        **(extra or {}),
    }
    config = read_config(ca_dir / "tetra.toml", environ=environ)
    loop = asyncio.new_event_loop()
    served = build_app(config)
    http: TestClient[Any, Any] = TestClient(ListenerTestServer(served, "http"), loop=loop)
    loop.run_until_complete(http.start_server())
    token = loop.run_until_complete(make_token(served[CA], "administrator"))
    watch = LogWatch()
    logging.getLogger().addHandler(watch)
    app = FuzzApp(loop, http, db_url, watch, token)
    started = time.monotonic()
    try:
        yield app
    finally:
        logging.getLogger().removeHandler(watch)
        loop.run_until_complete(http.close())
        loop.close()
        if app._engine is not None:
            app._engine.dispose()
        dns.stop()
        http01.stop()
        count, seconds = STATS.setdefault(name, [0, 0.0])
        STATS[name] = [count + app.examples, seconds + time.monotonic() - started]


# -- strategies ------------------------------------------------------------------------------


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """Structure-preserving damage to a valid DER (or any) encoding: flipped bytes, cut ranges,
    inserted runs, truncation, a repeated slice, stacked up to four deep."""

    def flip(data: bytes, at: int, value: int) -> bytes:
        if not data:
            return bytes([value])
        i = at % len(data)
        return data[:i] + bytes([value]) + data[i + 1 :]

    def cut(data: bytes, at: int, length: int) -> bytes:
        i = at % (len(data) + 1)
        return data[:i] + data[i + length :]

    def insert(data: bytes, at: int, run: bytes) -> bytes:
        i = at % (len(data) + 1)
        return data[:i] + run + data[i:]

    def repeat(data: bytes, at: int, length: int) -> bytes:
        i = at % (len(data) + 1)
        return data[:i] + data[i : i + length] * 2 + data[i + length :]

    position = st.integers(0, 1 << 16)
    one = st.one_of(
        st.tuples(position, st.integers(0, 255)).map(lambda a: lambda d: flip(d, *a)),
        st.tuples(position, st.integers(1, 64)).map(lambda a: lambda d: cut(d, *a)),
        st.tuples(position, st.binary(min_size=1, max_size=16)).map(lambda a: lambda d: insert(d, *a)),
        st.tuples(position, st.integers(1, 64)).map(lambda a: lambda d: repeat(d, *a)),
        position.map(lambda n: lambda d: d[: n % (len(d) + 1)]),
        st.sampled_from([0x80, 0x81, 0x84, 0xFF]).map(lambda b: lambda d: flip(d, 1, b)),  # outer length form
    )

    def apply(steps: list[Callable[[bytes], bytes]]) -> bytes:
        data = valid
        for step in steps:
            data = step(data)
        return data

    return st.lists(one, min_size=1, max_size=4).map(apply)


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["", "²", "١٢", "0", "-1", "1" * 40, "a" * 4096, "\x00", "https://", "tls-server"]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


def deep_json() -> st.SearchStrategy[bytes]:
    """Nesting far past any parser's comfort: '[[[[...]]]]' and '{"a":{"a":...}}'."""
    depth = st.integers(50, 20_000)
    return st.one_of(
        depth.map(lambda n: b"[" * n + b"]" * n),
        depth.map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        depth.map(lambda n: b"[" * n),  # unterminated
    )


def json_object_like(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the endpoint's own member names holding values of any type."""
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=8), JSON_VALUES, max_size=len(keys) + 1)


def id_texts() -> st.SearchStrategy[str]:
    """What a path id may be written as: digits of other scripts, huge numbers, signs, junk."""
    return st.one_of(
        st.sampled_from(["²", "١", "١٢٣", "0", "00", "-1", "+1", "1e3", "1" * 19, "9" * 40, " 1", "0x10"]),
        st.text(st.characters(categories=("Nd", "No", "Nl")), min_size=1, max_size=6),
        st.text(min_size=1, max_size=12).filter(lambda s: "/" not in s and "?" not in s and "#" not in s),
    )
