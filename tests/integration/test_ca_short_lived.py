"""An issuing CA whose own certificate ends before the certificates of its profiles could (CAL-03):
`tetra ca list` warns about it, no leaf outlives it, and once it has expired it issues nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from ca.clock import FrozenClock
from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Requester
from ca.errors import FailureReason, IssuerUnavailable
from ca.store.repositories import CertificateFilter
from server.wiring import build_ca, read_config
from tests.cli_here import tetra_here
from tests.helpers import enroll, make_csr
from tests.integration.test_add_to_config import _init_intermediate

OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)


def _short_lived_ca(ca_dir: Path, days: int) -> None:
    """A second issuing CA valid for ``days``, and a profile issuing 365-day certificates from it."""
    made = tetra_here(*_init_intermediate(ca_dir, "short-ca", ca_dir / "ca"), "--validity-days", str(days))
    assert made.returncode == 0, made.stderr
    profile = (ca_dir / "profiles" / "tls-client.toml").read_text()
    (ca_dir / "profiles" / "short-client.toml").write_text('issuer = "short-ca"\n' + profile)


def test_list_warns_about_a_ca_ending_before_its_leaves(ca_dir: Path) -> None:
    """CAL-03: the warning names the CA, its end and the validity it cuts short; a CA that lives
    long enough is not named."""
    _short_lived_ca(ca_dir, 30)
    listed = tetra_here("ca", "list", "--config", str(ca_dir / "tetra.toml"))
    assert listed.returncode == 0, listed.stderr
    warnings = [line for line in listed.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, listed.stdout
    assert "short-ca" in warnings[0] and "365-day" in warnings[0]
    as_json = json.loads(tetra_here("ca", "list", "--format", "json", "--config", str(ca_dir / "tetra.toml")).stdout)
    states = {line["name"]: (line["kind"], line["state"]) for line in as_json["cas"]}
    assert states == {
        "root": ("root", "active"),
        "issuing-ca": ("issuing", "active"),
        "short-ca": ("issuing", "active"),
    }
    assert as_json["warnings"] == warnings


def test_no_leaf_outlives_the_ca_and_an_expired_ca_issues_nothing(ca_dir: Path) -> None:
    """CAL-03: a 365-day request gets the CA's own notAfter; after the CA's end the request is
    refused as unavailable before anything is stored or signed."""
    _short_lived_ca(ca_dir, 30)

    async def run() -> None:
        clock = FrozenClock(dt.datetime.now(dt.UTC))
        ca = await build_ca(read_config(ca_dir / "tetra.toml"), clock=clock)
        try:
            short = ca.issuers["short-ca"]
            csr, _ = make_csr(["short.example.com"])
            request = enrollment_from_csr(csr, protocol="cli", profile_name="short-client", requester=OPERATOR)
            outcome = await enroll(ca, request)
            assert outcome.issuer == "short-ca"
            assert outcome.certificate.not_valid_after_utc == short.not_after
            clock.advance(dt.timedelta(days=31))
            before = len(await ca.certificates.list(CertificateFilter(limit=1000)))
            with pytest.raises(IssuerUnavailable) as refused:
                await enroll(ca, request)
            assert refused.value.reason is FailureReason.UNAVAILABLE
            assert "short-ca expired" in refused.value.detail
            assert short.signing_attempts == 1
            assert len(await ca.certificates.list(CertificateFilter(limit=1000))) == before
        finally:
            await ca.close()

    asyncio.run(run())
