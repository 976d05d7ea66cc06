"""SCEP's own table (scep_transactions) on PostgreSQL, where concurrent twins really race in
separate transactions: SCEP-17 (one certificate for eight copies at once, the same one again
later) and SCEP-14 (PENDING, CertPoll, approval) against `tetra serve` on a migrated database."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from ca.store.migrate import upgrade
from tests import scep_client
from tests.integration.scep_support import HELD, STATIC, running_server

pytestmark = pytest.mark.slow


def test_twins_pending_and_polling_on_postgresql(ca_dir: Path, tmp_path: Path, postgres_url: str) -> None:
    upgrade(postgres_url)  # 0009 included: the migration is what creates scep_transactions here
    with running_server(ca_dir, tmp_path, db_url=postgres_url) as server:
        requester = scep_client.Requester.fresh("pg-twins.example.com")
        message = scep_client.pkcs_req(
            requester, server.ra_certificate(), "pg-twins.example.com", ["pg-twins.example.com"], challenge=STATIC
        )
        before = server.counts()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda _: server.exchange(message, requester), range(8)))
        assert server.counts()[0] == before[0] + 1
        assert len({r.certificate for r in replies if r.status == scep_client.SUCCESS}) == 1
        assert all(r.status in (scep_client.SUCCESS, scep_client.PENDING) for r in replies)

        held = scep_client.Requester.fresh("pg-held.example.com")
        path = "/scep/held/pkiclient.exe"
        request = scep_client.pkcs_req(held, server.ra_certificate(), "pg-held.example.com", challenge=HELD)
        assert server.exchange(request, held, path).status == scep_client.PENDING
        (request_id,) = server.pending_request_ids()
        server.cli("requests", "approve", str(request_id))
        poll = scep_client.cert_poll(
            held, server.ra_certificate(), server.issuing_ca().subject, held.certificate.subject
        )
        assert server.exchange(poll, held, path).status == scep_client.SUCCESS
