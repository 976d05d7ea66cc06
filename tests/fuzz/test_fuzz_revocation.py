"""DOS-06: OCSP requests (RFC 6960 §4.1, RFC 5019 GET): damaged DER of a real request, random
bytes, and GET paths of every kind of base64 and percent-escape. Every answer is an OCSP response
(successful, malformedRequest, unauthorized, ...), never an HTTP error page; a successful one
passes pkilint. CRL paths too: a CRL, or the CRL route's own plain 404."""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.harness import FuzzApp, Reply, fuzz_app, fuzz_settings, mutated
from tests.helpers import make_csr
from tests.pkilint_check import assert_ocsp_lints_clean
from tests.revocation_support import request_der


def is_ocsp(reply: Reply) -> bool:
    if reply.status != 200 or reply.content_type != "application/ocsp-response":
        return False
    try:
        ocsp.load_der_ocsp_response(reply.body)
    except ValueError:
        return False
    return True


def issue(app: FuzzApp) -> tuple[x509.Certificate, x509.Certificate]:
    csr, _ = make_csr(["fuzz.example.com"])
    body = {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server"}
    headers = {"Authorization": f"Bearer {app.token}"}

    async def post() -> dict[str, str]:
        async with app.http.post("/api/v1/enroll", json=body, headers=headers) as resp:
            assert resp.status == 201, await resp.text()
            answer: dict[str, str] = await resp.json()
            return answer

    issued = app.run(post())
    chain = x509.load_pem_x509_certificates(issued["chain"].encode())
    return x509.load_pem_x509_certificate(issued["certificate"].encode()), chain[0]


class Linted:
    """Lints the first successful answer of each certificate status (linting every one would
    spend the budget on pkilint rather than on inputs)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, reply: Reply) -> None:
        response = ocsp.load_der_ocsp_response(reply.body)
        if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
            return
        kind = response.certificate_status.name
        if kind not in self.seen:
            self.seen.add(kind)
            assert_ocsp_lints_clean(reply.body)


def test_ocsp_post_bodies(ca_dir: Path) -> None:
    """DOS-06, OCSP-05: damaged DER of a real request and random bytes, by POST."""
    with fuzz_app("ocsp POST", ca_dir) as app:
        cert, issuer = issue(app)
        valid = request_der(cert, issuer)
        lint = Linted()
        headers = {"Content-Type": "application/ocsp-request"}

        @fuzz_settings(3)
        @given(mutated(valid) | st.binary(max_size=400))
        @example(valid)
        def check(body: bytes) -> None:
            lint(app.check(lambda: app.request("POST", "/ocsp", body, headers), is_ocsp))

        check()
        assert "GOOD" in lint.seen


def test_ocsp_get_paths(ca_dir: Path) -> None:
    """DOS-06, OCSP-05: the GET form with damaged requests in standard and URL-safe base64,
    escaped and not, and arbitrary text."""
    with fuzz_app("ocsp GET", ca_dir) as app:
        cert, issuer = issue(app)
        valid = request_der(cert, issuer)
        encodings = st.sampled_from([base64.b64encode, base64.urlsafe_b64encode])
        encoded = st.tuples(mutated(valid) | st.just(valid), encodings, st.booleans()).map(
            lambda t: quote(t[1](t[0]).decode(), safe="" if t[2] else "/+=")
        )
        junk = st.text(max_size=200).map(lambda s: quote(s, safe="%/+="))
        lint = Linted()

        @fuzz_settings(3)
        @given(encoded | junk)
        def check(tail: str) -> None:
            lint(app.check(lambda: app.request("GET", "/ocsp/" + tail), is_ocsp))

        check()


def is_crl_refusal(reply: Reply) -> bool:
    """The CRL route's own refusals: 404 naming what was not found (not aiohttp's '404: Not
    Found'), 503 with Retry-After for a CRL not generated yet."""
    if reply.status == 503 and "Retry-After" not in reply.headers:
        return False
    return (
        reply.status in (404, 503)
        and reply.content_type == "text/plain"
        and not reply.body.startswith(b"404: Not Found")
    )


def test_crl_paths(ca_dir: Path) -> None:
    """DOS-06: CRL names of any text: the CRL (DER that parses), or the route's own 404."""
    with fuzz_app("crl GET", ca_dir) as app:
        names = st.sampled_from(["issuing-ca.crl", "issuing-ca/0.crl", "issuing-ca/delta.crl", "x.crl"])
        junk = st.text(max_size=80).map(lambda s: quote(s, safe="%/.+="))

        @fuzz_settings()
        @given(names | junk | st.tuples(names, junk).map("".join))
        @example("%0A")
        def check(tail: str) -> None:
            reply = app.check(lambda: app.request("GET", "/crl/" + tail), is_crl_refusal)
            if reply.status == 200:
                x509.load_der_x509_crl(reply.body)

        check()
