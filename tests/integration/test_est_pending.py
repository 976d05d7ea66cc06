"""A profile that needs an operator's approval: 202 with Retry-After, the same CSR posted again
while pending creates no second request, and after `tetra requests approve ID` the next identical
retry gets the certificate (RFC 7030 §4.2.3)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.est_support import (
    PASSWORD,
    USER,
    EstServer,
    certificates,
    curl,
    enroll_args,
    est_server,
    openssl_csr,
    verify_chain,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def server(ca_dir: Path, tmp_path: Path) -> Iterator[EstServer]:
    yield from est_server(ca_dir, tmp_path)


def test_held_then_approved(server: EstServer, tmp_path: Path) -> None:
    """EST-11: 202 + Retry-After; a retry while pending adds no request; approval, then 200."""
    _, csr = openssl_csr(tmp_path, "held.example.com", sans="DNS:held.example.com")
    args = enroll_args(csr, "-u", f"{USER}:{PASSWORD}")
    certs_before, requests_before, _ = server.counts()
    first = curl(server, tmp_path, f"{server.url}/held/simpleenroll", *args)
    assert first.status == 202, first.text
    assert first.headers["retry-after"] == "2"
    match = re.search(r"request (\d+) is waiting", first.text)
    assert match, first.text
    again = curl(server, tmp_path, f"{server.url}/held/simpleenroll", *args)
    assert again.status == 202 and f"request {match.group(1)} " in again.text
    assert server.counts() == (certs_before, requests_before + 1, 1)
    server.cli("requests", "approve", match.group(1))
    issued = curl(server, tmp_path, f"{server.url}/held/simpleenroll", *args)
    assert issued.status == 200, issued.text
    (cert,) = certificates(issued)
    verify_chain(server, tmp_path, cert)
    # Asked again later: the same certificate, still no second request.
    repeat = curl(server, tmp_path, f"{server.url}/held/simpleenroll", *args)
    assert certificates(repeat) == (cert,)
    assert server.counts() == (certs_before + 1, requests_before + 1, 1)


def test_rejected_request_is_refused_on_retry(server: EstServer, tmp_path: Path) -> None:
    _, csr = openssl_csr(tmp_path, "nope.example.com", sans="DNS:nope.example.com")
    args = enroll_args(csr, "-u", f"{USER}:{PASSWORD}")
    first = curl(server, tmp_path, f"{server.url}/held/simpleenroll", *args)
    match = re.search(r"request (\d+) is waiting", first.text)
    assert first.status == 202 and match, first.text
    server.cli("requests", "reject", match.group(1))
    retry = curl(server, tmp_path, f"{server.url}/held/simpleenroll", *args)
    assert retry.status == 403 and "rejected" in retry.text


def test_another_client_cannot_poll_a_held_csr(server: EstServer, tmp_path: Path) -> None:
    """The same CSR posted by another user while held: 403, no second request."""
    _, csr = openssl_csr(tmp_path, "mine.example.com", sans="DNS:mine.example.com")
    first = curl(server, tmp_path, f"{server.url}/held/simpleenroll", *enroll_args(csr, "-u", f"{USER}:{PASSWORD}"))
    assert first.status == 202
    password = server.cli("est", "user", "add", "mallory").split("password:")[1].split()[0]
    before = server.counts()
    reply = curl(server, tmp_path, f"{server.url}/held/simpleenroll", *enroll_args(csr, "-u", f"mallory:{password}"))
    assert reply.status == 403 and "another client" in reply.text
    assert server.counts() == before
