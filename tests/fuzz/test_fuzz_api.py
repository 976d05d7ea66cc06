"""DOS-06: the management API's JSON bodies and path ids, and certificate requests (PKCS#10
DER, RFC 2986) both through the API and straight into the core's parser. Every API refusal is
an RFC 9457 problem document; nothing is stored for a refusal; the CSR parser raises only the
CA's own error."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import example, given
from hypothesis import strategies as st

from ca.csr import enrollment_from_csr, parse_csr
from ca.enrollment import AuthMethod, Requester
from ca.errors import CAError
from tests.fuzz.harness import (
    JSON_VALUES,
    STATS,
    FuzzApp,
    Reply,
    deep_json,
    fuzz_app,
    fuzz_settings,
    id_texts,
    json_object_like,
    mutated,
)
from tests.helpers import make_csr

ENROLL_MEMBERS = ["csr", "profile", "inventory", "owner", "team", "application", "location", "issuer"]
REVOKE_MEMBERS = ["serial", "issuer", "reason"]


def is_api_error(reply: Reply) -> bool:
    body = reply.json_object("application/problem+json")
    return (
        body is not None
        and str(body.get("type", "")).startswith("urn:tetra:problem:")
        and body.get("status") == reply.status
        and isinstance(body.get("detail"), str)
    )


def auth(app: FuzzApp) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.token}", "Content-Type": "application/json"}


def valid_csr_der() -> bytes:
    csr, _ = make_csr(["api-fuzz.example.com"])
    return csr.public_bytes(Encoding.DER)


def pem(der: bytes) -> str:
    lines = base64.b64encode(der).decode()
    body = "\n".join(lines[i : i + 64] for i in range(0, len(lines), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"


def test_api_bodies_and_ids(ca_dir: Path) -> None:
    """DOS-06: enroll and revoke bodies of any shape (members of the wrong type, huge strings,
    deep nesting, not JSON) and request ids of any script."""
    csr_pem = pem(valid_csr_der())
    with fuzz_app("api JSON", ca_dir) as app:
        inventory = json_object_like(["owner", "team", "application", "location"])
        enroll = st.fixed_dictionaries(
            {"csr": st.just(csr_pem) | JSON_VALUES, "profile": st.just("tls-server") | JSON_VALUES},
            optional={"inventory": inventory | JSON_VALUES, "issuer": JSON_VALUES},
        )
        bodies = st.one_of(
            st.tuples(st.just("enroll"), enroll | json_object_like(ENROLL_MEMBERS)),
            st.tuples(st.just("revoke"), json_object_like(REVOKE_MEMBERS)),
            st.tuples(st.sampled_from(["enroll", "revoke"]), JSON_VALUES),
        ).map(lambda t: (t[0], json.dumps(t[1]).encode()))
        raw = st.tuples(st.sampled_from(["enroll", "revoke"]), deep_json() | st.binary(max_size=300))

        @fuzz_settings(2)
        @given(bodies | raw)
        @example(("enroll", json.dumps({"csr": csr_pem, "profile": "tls-server", "inventory": {"owner": {}}}).encode()))
        @example(("enroll", json.dumps({"csr": csr_pem, "profile": "tls-server", "issuer": {"a": 1}}).encode()))
        @example(("revoke", json.dumps({"serial": "01", "reason": [1]}).encode()))
        @example(
            (
                "enroll",
                json.dumps({"csr": csr_pem, "profile": "tls-server", "inventory": {"owner": "o" * 100_000}}).encode(),
            )
        )
        def check(case: tuple[str, bytes]) -> None:
            endpoint, body = case
            app.check(lambda: app.request("POST", f"/api/v1/{endpoint}", body, auth(app)), is_api_error)

        check()

        @fuzz_settings()
        @given(id_texts())
        @example("1" * 40)
        def poll(text: str) -> None:
            app.check(lambda: app.request("GET", f"/api/v1/requests/{text}", b"", auth(app)), is_api_error)

        poll()


def test_api_enroll_with_damaged_csrs(ca_dir: Path) -> None:
    """DOS-06, CSR-01: damaged DER of a real CSR through the API: issued, or refused in JSON."""
    valid = valid_csr_der()
    with fuzz_app("api CSR", ca_dir) as app:

        @fuzz_settings()
        @given(mutated(valid))
        def check(der: bytes) -> None:
            body = json.dumps({"csr": pem(der), "profile": "tls-server"}).encode()
            app.check(lambda: app.request("POST", "/api/v1/enroll", body, auth(app)), is_api_error)

        check()


def test_csr_parser_raises_only_ca_errors() -> None:
    """DOS-06, CSR-01: the core's CSR parser and the step that reads its names, on damaged DER
    and PEM: a request, or the CA's own error (which every protocol maps to its wire format)."""
    valid = valid_csr_der()
    requester = Requester("fuzz", AuthMethod.OPERATOR)
    runs = [0]

    @fuzz_settings(5)
    @given(mutated(valid).map(lambda der: der if len(der) % 2 else pem(der).encode()) | st.binary(max_size=300))
    def check(data: bytes) -> None:
        runs[0] += 1
        try:
            csr = parse_csr(data)
            enrollment_from_csr(csr, protocol="api", profile_name="tls-server", requester=requester)
        except CAError:
            pass

    started = time.monotonic()
    check()
    count, seconds = STATS.setdefault("csr parser", [0, 0.0])
    STATS["csr parser"] = [count + runs[0], seconds + time.monotonic() - started]
