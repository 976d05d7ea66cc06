"""Payload decoders, resource encoders, ARI identifiers, CAA evaluation and the config section."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ca.enrollment import Identifier
from ca.errors import CAError, ConfigError, FailureReason, PolicyViolation
from ca.tomlread import Table
from protocols.acme import ari
from protocols.acme.codec import decode_finalize, decode_new_account, decode_new_order, decode_revoke, parse_time
from protocols.acme.config import parse_config
from protocols.acme.errors import AcmeProblem, problem_from_ca_error, render_problem
from protocols.acme.va.caa import permits
from protocols.acme.va.resolve import CaaRecord


def test_new_order_decoding() -> None:
    order = decode_new_order(
        b'{"identifiers":[{"type":"dns","value":"*.a.example"},{"type":"ip","value":"::1"},'
        b'{"type":"dns","value":"*.a.example"}],"notAfter":"2030-01-01T00:00:00Z",'
        b'"profile":"tls-server","replaces":"x.y"}'
    )
    assert [i.identifier for i in order.identifiers] == [Identifier("dns", "*.a.example"), Identifier("ip", "::1")]
    assert order.identifiers[0].wildcard and order.identifiers[0].base == Identifier("dns", "a.example")
    assert order.not_after == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert order.profile == "tls-server" and order.replaces == "x.y"


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"", "malformed"),
        (b"[]", "malformed"),
        (b'{"identifiers":[]}', "malformed"),
        (b'{"identifiers":[{"type":"email","value":"a@b"}]}', "unsupportedIdentifier"),
        (b'{"identifiers":[{"type":"ip","value":"1.2.3"}]}', "rejectedIdentifier"),
        (b'{"identifiers":[{"type":"dns","value":"a.*.b"}]}', "rejectedIdentifier"),
        (b'{"identifiers":[{"type":"dns","value":"a"}],"notAfter":"yesterday"}', "malformed"),
        (
            b'{"identifiers":[{"type":"dns","value":"a"}],"notBefore":"2030-01-02T00:00:00Z",'
            b'"notAfter":"2030-01-01T00:00:00Z"}',
            "malformed",
        ),
    ],
)
def test_new_order_refusals(payload: bytes, kind: str) -> None:
    with pytest.raises(AcmeProblem) as err:
        decode_new_order(payload)
    assert err.value.type == kind


def test_contacts() -> None:
    assert decode_new_account(b'{"contact":["mailto:a@example.com"]}').contact == ("mailto:a@example.com",)
    for bad, kind in (
        (b'{"contact":["tel:+1"]}', "unsupportedContact"),
        (b'{"contact":["mailto:nobody"]}', "invalidContact"),
    ):
        with pytest.raises(AcmeProblem) as err:
            decode_new_account(bad)
        assert err.value.type == kind


def test_finalize_and_revoke_decoding() -> None:
    with pytest.raises(AcmeProblem) as err:
        decode_finalize(b'{"csr":"AA=="}')
    assert err.value.type == "badCSR"
    with pytest.raises(AcmeProblem) as err:
        decode_revoke(b'{"certificate":"AA","reason":"1"}')
    assert err.value.type == "badRevocationReason"


def test_time_needs_a_zone() -> None:
    with pytest.raises(AcmeProblem):
        parse_time("2030-01-01T00:00:00", "notAfter")


@pytest.mark.parametrize(
    ("reason", "kind", "status"),
    [
        (FailureReason.BAD_PUBLIC_KEY, "badPublicKey", 400),
        (FailureReason.REJECTED_BY_POLICY, "rejectedIdentifier", 400),
        (FailureReason.UNAUTHORIZED, "unauthorized", 403),
        (FailureReason.RATE_LIMITED, "rateLimited", 429),
        (FailureReason.UNAVAILABLE, "serverInternal", 503),
        (FailureReason.ALREADY_REVOKED, "alreadyRevoked", 400),
    ],
)
def test_error_table(reason: FailureReason, kind: str, status: int) -> None:
    problem = problem_from_ca_error(CAError("why", reason))
    assert (problem.type, problem.status) == (kind, status)
    response = render_problem(problem)
    assert response.headers["Content-Type"] == "application/problem+json"
    assert ("Retry-After" in response.headers) == (reason in (FailureReason.RATE_LIMITED, FailureReason.UNAVAILABLE))


def test_policy_refusal_at_finalize_is_bad_csr() -> None:
    assert problem_from_ca_error(PolicyViolation("profile x: no"), during_finalize=True).type == "badCSR"


def test_ari_cert_id_round_trip() -> None:
    """RFC 9773 §4.1 example: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
    serial 00:87:65:43:21."""
    cert_id = ari.CertId(bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4"), 0x87654321)
    assert str(cert_id) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
    assert ari.parse_cert_id(str(cert_id)) == cert_id
    with pytest.raises(AcmeProblem):
        ari.parse_cert_id("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AAE")  # non-minimal serial


def test_ari_windows() -> None:
    nb = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    window = ari.normal_window(nb, nb + dt.timedelta(days=90), 30)
    assert window.start == nb + dt.timedelta(days=60) and window.end == nb + dt.timedelta(days=75)


@pytest.mark.parametrize(
    ("records", "wildcard", "ok"),
    [
        ([CaaRecord(0, "issue", "tetra.example")], False, True),
        ([CaaRecord(0, "issue", ";")], False, False),
        ([CaaRecord(0, "issue", "other.example")], False, False),
        ([CaaRecord(0, "issue", "tetra.example"), CaaRecord(0, "issuewild", "other.example")], True, False),
        ([CaaRecord(0, "issue", "other.example"), CaaRecord(0, "issuewild", "tetra.example")], True, True),
        ([CaaRecord(0, "iodef", "mailto:x@example.com")], False, True),
        ([CaaRecord(128, "future", "x"), CaaRecord(0, "issue", "tetra.example")], False, False),
        ([CaaRecord(0, "issue", "tetra.example; accounturi=https://x/acme/acct/2")], False, False),
        ([CaaRecord(0, "issue", "tetra.example; accounturi=https://x/acme/acct/1")], False, True),
        ([CaaRecord(0, "issue", "tetra.example; validationmethods=dns-01")], False, False),
    ],
)
def test_caa_rules(records: list[CaaRecord], wildcard: bool, ok: bool) -> None:
    """ACME-23 (RFC 8659 §4, RFC 8657)."""
    allowed, _ = permits(
        records, wildcard=wildcard, identities=("tetra.example",), account_uri="https://x/acme/acct/1", method="http-01"
    )
    assert allowed is ok


def test_config_strict_and_defaults() -> None:
    cfg = parse_config(
        Table(
            {
                "validation": {"http_port": 5002, "resolver": "127.0.0.1:53"},
                "profiles": {"lab": {"pre_authorization": True}},
            },
            "t.toml",
            "acme.",
        )
    )
    assert cfg.validation.http_port == 5002 and cfg.validation.resolver == ("127.0.0.1", 53)
    assert cfg.validation.tls_port == 443 and cfg.profile_settings("lab").pre_authorization
    bad: dict[str, Any]
    for bad in (
        {"validaton": {}},
        {"validation": {"resolver": "nope"}},
        {"authz_reuse": 500 * 86400},
        {"validation": {"http_port": 0}},
    ):
        with pytest.raises(ConfigError):
            parse_config(Table(bad, "t.toml", "acme."))
