"""Builders shared by the tests: keys, CSRs, a counting signer proxy."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from ca.keys import generate_private_key

T = TypeVar("T")


def make_csr(
    names: list[str] | tuple[str, ...] = ("www.example.com",),
    *,
    key_spec: str = "ec-p256",
    key: Any = None,
    cn: str | None = None,
    extra_extensions: list[tuple[x509.ExtensionType, bool]] = (),  # type: ignore[assignment]
) -> tuple[x509.CertificateSigningRequest, Any]:
    """A CSR for 'dns:...'/'ip:...'/'email:...' names (bare names are DNS)."""
    from ca.enrollment import Identifier

    key = key or generate_private_key(key_spec)
    idents = [Identifier.parse(n) if ":" in n else Identifier("dns", n) for n in names]
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([])
    )
    if idents:
        builder = builder.add_extension(x509.SubjectAlternativeName([i.to_general_name() for i in idents]), False)
    for ext, critical in extra_extensions:
        builder = builder.add_extension(ext, critical)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm), key


def self_signed(
    cn: str, *, key_spec: str = "rsa-2048", ca: bool = False, key: Any = None, now: dt.datetime | None = None
) -> tuple[Any, x509.Certificate]:
    """A key and a self-signed certificate valid from an hour before ``now`` (default: now) for a
    day: an RA or TLS test CA (``ca``: with basicConstraints cA), or a SCEP client's signing
    certificate (``now`` days ago: an expired one)."""
    key = key or generate_private_key(key_spec)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = now or dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return key, builder.sign(key, algorithm)


class CountingSigner:
    """Wraps a signer and counts how often its key is asked to sign ("nothing issued" checks)."""

    # A wrapper may hand out another key (RecordingSigner) or faulty signatures (CORE-11 tests):
    # callers always verify, whatever the wrapped signer would have said.
    needs_signature_check = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.runs = 0

    def public_key(self) -> Any:
        return self.inner.public_key()

    def private_key(self) -> Any:
        return self.inner.private_key()

    async def run(self, work: Callable[[], T]) -> T:
        self.runs += 1
        result: T = await self.inner.run(work)
        return result

    async def check(self) -> None:
        await self.inner.check()

    async def close(self) -> None:
        await self.inner.close()


class GatedSigner(CountingSigner):
    """A counting signer that holds every signing call until the test opens the gate: lets a
    test act while an issuance sits between its intent row and its signature."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.entered = asyncio.Event()  # set when a call reaches the gate
        self.gate = asyncio.Event()  # set by the test to let calls through

    async def run(self, work: Callable[[], T]) -> T:
        self.entered.set()
        await self.gate.wait()
        return await super().run(work)


class LoopGaps:
    """The longest the event loop went without running a 10 ms ticker while the block ran: a call
    that blocks the loop (a stuck token, a hung database) shows as a long gap."""

    def __init__(self) -> None:
        self.gaps: list[float] = []
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def longest(self) -> float:
        return max(self.gaps, default=0.0)

    async def _tick(self) -> None:
        last = time.monotonic()
        while not self._done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            self.gaps.append(now - last)
            last = now

    async def __aenter__(self) -> LoopGaps:
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._done.set()
        assert self._task is not None
        await self._task


async def enroll(ca: Any, request: Any, **kwargs: Any) -> Any:
    """decide + enroll, as a protocol does: the tests' shorthand for one enrollment through the core."""
    return await ca.enroll(await ca.decide(request), **kwargs)


_REFUSE_ISSUED = {
    # Boulder's MySQL trigger, in each of our stores: the final write that marks a certificate issued fails.
    "postgresql": [
        "CREATE FUNCTION tetra_test_refuse_issued() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'test trigger: no certificate may become issued'; END $$",
        "CREATE TRIGGER tetra_test_refuse_issued BEFORE UPDATE ON certificates FOR EACH ROW "
        "WHEN (NEW.status = 'issued') EXECUTE FUNCTION tetra_test_refuse_issued()",
    ],
    "sqlite": [
        "CREATE TRIGGER tetra_test_refuse_issued BEFORE UPDATE ON certificates FOR EACH ROW "
        "WHEN NEW.status = 'issued' BEGIN SELECT RAISE(ABORT, 'test trigger: no certificate may become issued'); END",
    ],
}
_ALLOW_ISSUED = {
    "postgresql": [
        "DROP TRIGGER tetra_test_refuse_issued ON certificates",
        "DROP FUNCTION tetra_test_refuse_issued()",
    ],
    "sqlite": ["DROP TRIGGER tetra_test_refuse_issued"],
}


@asynccontextmanager
async def refuse_issued(ca: Any) -> AsyncIterator[None]:
    """While inside, the store refuses to mark any certificate issued (a trigger, ST-07): the
    key signs, the result write fails, the intent row stays 'signing'."""

    async def run(statements: list[str]) -> None:
        def ddl(tx: Any) -> None:
            for statement in statements:
                tx.conn.exec_driver_sql(statement)

        await ca.db.write(ddl)

    await run(_REFUSE_ISSUED[ca.db.backend])
    try:
        yield
    finally:
        await run(_ALLOW_ISSUED[ca.db.backend])
