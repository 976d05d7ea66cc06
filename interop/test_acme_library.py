"""certbot's `acme` library (the client inside certbot) against a real `tetra serve` in chaos mode
(ACME-27): nonces refused now and then, validations delayed at random, and every flow still
completes: new account, order, http-01, finalize, download, revoke."""

from __future__ import annotations

import datetime as dt
import re
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import josepy as jose
import pytest
from acme import challenges, client, crypto_util, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from interop.acme_helpers import Http01Responder, LoopbackDns
from interop.acme_server import TetraServer, check_certificate, start_tetra, status_of
from tests.tetra_process import free_port

FLOWS = 3


@pytest.fixture
def responder() -> Iterator[Http01Responder]:
    server = Http01Responder().start()
    yield server
    server.stop()


def chaos_server(tmp_path: Path, dns_server: LoopbackDns, responder: Http01Responder, fraction: float) -> TetraServer:
    return start_tetra(
        tmp_path,
        dns_server,
        http01_port=responder.port,
        tls_port=free_port(),
        extra_env={
            "TETRA_ACME__CHAOS__REJECT_NONCE_FRACTION": str(fraction),
            "TETRA_ACME__CHAOS__VALIDATION_DELAY_MAX_MS": "3000",
        },
    )


def full_flow(server: TetraServer, responder: Http01Responder, names: list[str], work: Path) -> None:
    """The certbot library's own calls, as certbot makes them."""
    account_key = jose.jwk.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    # requests takes a CA bundle path where the type says bool
    net = client.ClientNetwork(
        account_key,
        alg=jose.jwa.ES256,
        user_agent="tetra-interop",
        verify_ssl=str(server.root),  # type: ignore[arg-type]
    )
    acme = client.ClientV2(client.ClientV2.get_directory(server.acme_directory, net), net)
    regr = acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    assert regr.body.status == "valid" and regr.uri.startswith(server.acme_directory.removesuffix("directory"))

    cert_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = cert_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    order = acme.new_order(crypto_util.make_csr(key_pem, names))
    for authz in order.authorizations:
        challb = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01))
        response, validation = challb.chall.response_and_validation(account_key)
        responder.tokens[challb.chall.encode("token")] = validation
        acme.answer_challenge(challb, response)
    deadline = dt.datetime.now() + dt.timedelta(seconds=90)
    order = acme.poll_and_finalize(order, deadline=deadline)

    chain_pem = order.fullchain_pem.encode()
    (work / "cert.pem").write_bytes(chain_pem)
    (work / "chain.pem").write_bytes(b"".join(re.findall(rb"-----BEGIN.*?END CERTIFICATE-----\n", chain_pem, re.S)[1:]))
    check_certificate(server, work / "cert.pem", work / "chain.pem", names)
    leaf = x509.load_pem_x509_certificate(chain_pem)
    acme.revoke(leaf, 4)  # superseded
    assert status_of(server, leaf.serial_number) == "revoked"


def acme_bad_nonces(server: TetraServer) -> int:
    """badNonce answers the server counted (every ACME 400 in these flows is one)."""
    context = ssl.create_default_context(cafile=str(server.root))
    with urllib.request.urlopen(f"https://127.0.0.1:{server.https_port}/metrics", context=context) as resp:
        text = resp.read().decode()
    pattern = r'^\S*requests\S*\{[^}]*protocol="acme"[^}]*status="400"[^}]*\} (\S+)$'
    return int(sum(float(v) for v in re.findall(pattern, text, re.M)))


@pytest.mark.parametrize("fraction", [0.05, 0.3])
def test_acme_library_completes_every_flow_in_chaos_mode(
    tmp_path: Path, dns_server: LoopbackDns, responder: Http01Responder, fraction: float
) -> None:
    """ACME-27: 5 % (the Pebble default) and 30 % (the most [acme.chaos] allows) refused nonces."""
    server = chaos_server(tmp_path, dns_server, responder, fraction)
    try:
        for flow in range(FLOWS):
            work = tmp_path / f"flow{flow}"
            work.mkdir()
            full_flow(server, responder, [f"f{flow}.chaos.example.com", f"www.f{flow}.chaos.example.com"], work)
        if fraction >= 0.3:
            assert acme_bad_nonces(server) > 0, "chaos mode refused no nonce"
        assert "CHAOS MODE IS ON" in server.log_tail(10**6)
    finally:
        server.stop()
