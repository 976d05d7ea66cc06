"""Discovery's TLS probe against real loopback servers: what each kind of endpoint presents and
every finding a certificate, a protocol version, a suite or a STARTTLS exchange can give."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from OpenSSL import SSL

from server.discovery.findings import CODES
from server.discovery.handshake import lowest_version
from server.discovery.targets import Endpoint, expand_targets
from server.discovery.tls_probe import EndpointReport, probe_endpoint
from server.discovery.trust_roots import system_roots
from tests.discovery_pki import LEAF_NAME, Issued, der, issue, resigned_with_sha1, shared_pki
from tests.discovery_servers import (
    CountingTls,
    imap_talker,
    ldap_talker,
    legacy_suite_server,
    refused_port,
    serve,
    server_context,
    smtp_talker,
    until_closed,
)

TIMEOUT = 5.0


def endpoint(port: int, *, server_name: str | None = LEAF_NAME, starttls: str | None = None) -> Endpoint:
    return Endpoint("127.0.0.1", port, "127.0.0.1", server_name, starttls)


async def probe(port: int, *, trust: list[x509.Certificate] | None = None, **options: str | None) -> EndpointReport:
    report = await probe_endpoint(
        endpoint(port, **options),
        timeout=TIMEOUT,
        trust=[shared_pki().root.cert] if trust is None else trust,
        now=dt.datetime.now(dt.UTC),
    )
    for item in report.findings:
        assert CODES[item.code].severity == item.severity
    return report


def codes(report: EndpointReport) -> list[str]:
    return sorted(item.code for item in report.findings)


async def probe_leaf(tmp_path: Path, leaf: Issued, *, with_intermediate: bool = True) -> EndpointReport:
    pki = shared_pki()
    chain = [leaf.cert, pki.intermediate.cert] if with_intermediate else [leaf.cert]
    async with serve(until_closed, tls=server_context(tmp_path, chain, leaf.key)) as port:
        return await probe(port)


async def test_good_chain_has_no_findings(tmp_path: Path) -> None:
    """A leaf, its intermediate and a trusted root: the chain as presented, TLS 1.2 and 1.3, nothing wrong."""
    pki = shared_pki()
    report = await probe_leaf(tmp_path, pki.leaf)
    assert report.error is None
    assert report.chain == der(pki.leaf.cert, pki.intermediate.cert)
    assert report.protocols == ("TLSv1.2", "TLSv1.3")
    assert report.weak_ciphers == ()
    assert report.findings == ()
    assert 0 < report.elapsed < TIMEOUT


@pytest.mark.parametrize(
    ("versions", "protocols", "handshakes"),
    [
        ((ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3), ("TLSv1.2", "TLSv1.3"), 4),
        ((ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3), ("TLSv1.3",), 2),
    ],
)
async def test_handshakes_per_endpoint(
    tmp_path: Path, versions: tuple[ssl.TLSVersion, ssl.TLSVersion], protocols: tuple[str, ...], handshakes: int
) -> None:
    """The cost of a probe, as the server counts it: 4 connections for TLS 1.2 + 1.3 (any version,
    TLS 1.2, a refused 1.1-or-older, weak suites), 2 for TLS 1.3 only (no weak-suite probe)."""
    pki = shared_pki()
    server = CountingTls(
        server_context(tmp_path, [pki.leaf.cert, pki.intermediate.cert], pki.leaf.key, versions=versions)
    )
    async with serve(server) as port:
        report = await probe(port)
    assert report.protocols == protocols and report.findings == ()
    assert server.connections == handshakes


async def test_the_name_expand_targets_gives_is_the_name_checked(tmp_path: Path) -> None:
    """A name spec ("localhost:port") becomes an endpoint whose server name is checked against the leaf."""
    pki = shared_pki()
    context = server_context(tmp_path, [pki.leaf.cert, pki.intermediate.cert], pki.leaf.key)
    async with serve(until_closed, tls=context) as port:
        targets = expand_targets([f"localhost:{port}"], [], cap=4)
        ipv4 = next(t for t in targets if t.address == "127.0.0.1")
        report = await probe_endpoint(ipv4, timeout=TIMEOUT, trust=[pki.root.cert], now=dt.datetime.now(dt.UTC))
    assert report.error is None
    assert [(f.code, f.detail) for f in report.findings] == [
        ("hostname-mismatch", f"localhost is not covered by {LEAF_NAME}")
    ]


async def test_untrusted_root_and_missing_intermediate(tmp_path: Path) -> None:
    """The whole chain with an unknown root gives unknown-root; a leaf alone gives missing-intermediate."""
    pki = shared_pki()
    chain = [pki.leaf.cert, pki.intermediate.cert, pki.root.cert]
    async with serve(until_closed, tls=server_context(tmp_path, chain, pki.leaf.key)) as port:
        assert codes(await probe(port, trust=[])) == ["unknown-root"]
        assert codes(await probe(port)) == []  # the same chain, its root trusted
    leaf_only = await probe_leaf(tmp_path, pki.leaf, with_intermediate=False)
    assert codes(leaf_only) == ["missing-intermediate"]
    assert leaf_only.chain == der(pki.leaf.cert)


async def test_a_server_wanting_a_client_certificate_still_shows_its_chain(tmp_path: Path) -> None:
    """TLS 1.2 with a client certificate required: the handshake fails after the server's
    certificates, which are kept and checked; the error says why."""
    pki = shared_pki()
    chain = [pki.leaf.cert, pki.intermediate.cert]
    tls12 = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    context = server_context(tmp_path, chain, pki.leaf.key, versions=tls12)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=pki.root.cert.public_bytes(serialization.Encoding.PEM).decode())
    async with serve(until_closed, tls=context) as port:
        report = await probe(port, server_name="mtls.example.test")
    assert report.chain == der(*chain)
    assert report.protocols == ()
    assert codes(report) == ["handshake-failed", "hostname-mismatch"]
    assert report.error is not None and report.error.endswith("(after the server's certificates)")


async def test_self_signed_leaf(tmp_path: Path) -> None:
    """A self-signed leaf nobody trusts: self-signed (and nothing else for a valid one)."""
    leaf = issue("leaf", issuer=None, names=[LEAF_NAME])
    report = await probe_leaf(tmp_path, leaf, with_intermediate=False)
    assert codes(report) == ["self-signed"]


async def test_expired_and_not_yet_valid_leaves(tmp_path: Path) -> None:
    """Validity is checked against the probe's time: an expired leaf, then one valid only tomorrow."""
    pki = shared_pki()
    expired = pki.leaf_from_intermediate(valid=(dt.timedelta(days=-30), dt.timedelta(days=-1)))
    future = pki.leaf_from_intermediate(valid=(dt.timedelta(days=1), dt.timedelta(days=30)))
    assert codes(await probe_leaf(tmp_path, expired)) == ["expired"]
    assert codes(await probe_leaf(tmp_path, future)) == ["not-yet-valid"]


async def test_weak_key_and_weak_signature(tmp_path: Path) -> None:
    """An RSA-1024 leaf gives weak-key; a leaf signed with ECDSA-SHA1 gives weak-signature."""
    pki = shared_pki()
    small = pki.leaf_from_intermediate(key=rsa.generate_private_key(public_exponent=65537, key_size=1024))
    sha1 = resigned_with_sha1(pki.leaf_from_intermediate(), pki.intermediate)
    small_report = await probe_leaf(tmp_path, small)
    assert codes(small_report) == ["weak-key"]
    assert "1024-bit" in small_report.findings[0].detail
    sha1_report = await probe_leaf(tmp_path, sha1)
    assert codes(sha1_report) == ["weak-signature"]
    assert "ecdsa-with-SHA1" in sha1_report.findings[0].detail


async def test_hostname_mismatch(tmp_path: Path) -> None:
    """The leaf covers www.example.test: probed as another name it mismatches; without a name, no check."""
    pki = shared_pki()
    context = server_context(tmp_path, [pki.leaf.cert, pki.intermediate.cert], pki.leaf.key)
    async with serve(until_closed, tls=context) as port:
        assert codes(await probe(port, server_name="mail.example.test")) == ["hostname-mismatch"]
        assert codes(await probe(port, server_name=None)) == []


def _old_versions_available() -> None:
    if lowest_version() > SSL.TLS1_VERSION:  # pragma: no cover - depends on the OpenSSL build
        pytest.skip("this OpenSSL cannot offer TLS 1.0")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        server.minimum_version = ssl.TLSVersion.TLSv1
    except (ValueError, ssl.SSLError):  # pragma: no cover
        pytest.skip("the system OpenSSL cannot serve TLS 1.0")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_old_protocol_versions(tmp_path: Path) -> None:
    """A TLS 1.0 to 1.2 server: every version found, with a finding for 1.0 and 1.1; a TLS 1.0-only one too."""
    _old_versions_available()
    pki = shared_pki()
    chain = [pki.leaf.cert, pki.intermediate.cert]
    wide = server_context(tmp_path, chain, pki.leaf.key, versions=(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2))
    async with serve(until_closed, tls=wide) as port:
        report = await probe(port)
    assert report.protocols == ("TLSv1", "TLSv1.1", "TLSv1.2")
    assert codes(report) == ["protocol-tls1.0", "protocol-tls1.1"]
    only = server_context(tmp_path, chain, pki.leaf.key, versions=(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1))
    async with serve(until_closed, tls=only) as port:
        report = await probe(port)
    assert report.protocols == ("TLSv1",)
    assert report.chain == der(*chain)
    assert codes(report) == ["protocol-tls1.0"]


async def test_weak_suites(tmp_path: Path) -> None:
    """A server that also takes a NULL suite: named in weak_ciphers; an anonymous-only one: no chain, no error."""
    pki = shared_pki()
    chain = [pki.leaf.cert, pki.intermediate.cert]
    tls12 = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
    null = server_context(
        tmp_path, chain, pki.leaf.key, versions=tls12, ciphers="ECDHE-ECDSA-AES128-GCM-SHA256:eNULL:@SECLEVEL=0"
    )
    async with serve(until_closed, tls=null) as port:
        report = await probe(port)
    assert report.weak_ciphers == ("ECDHE-ECDSA-NULL-SHA",)
    assert report.chain == der(*chain)
    assert codes(report) == ["weak-cipher"]
    anonymous = server_context(tmp_path, chain, pki.leaf.key, versions=tls12, ciphers="aNULL:@SECLEVEL=0")
    async with serve(until_closed, tls=anonymous) as port:
        report = await probe(port)
    assert report.error is None
    assert report.chain == ()
    assert report.protocols == ("TLSv1.2",)
    assert len(report.weak_ciphers) == 1
    assert report.weak_ciphers[0].startswith(("ADH-", "AECDH-"))
    assert codes(report) == ["weak-cipher"]


@pytest.mark.parametrize(("suite", "name"), [(0x000A, "DES-CBC3-SHA"), (0xC011, "ECDHE-RSA-RC4-SHA")])
async def test_suites_this_openssl_lacks(suite: int, name: str) -> None:
    """A peer that only takes 3DES (or RC4), which neither OpenSSL here has: the hand-written
    ClientHello still finds it, named as OpenSSL names it; no chain, since no handshake completed."""
    async with serve(legacy_suite_server(suite)) as port:
        report = await probe(port)
    assert report.error is None
    assert report.weak_ciphers == (name,)
    assert report.protocols == ("TLSv1.2",)
    assert report.chain == ()
    assert [(f.code, f.detail) for f in report.findings] == [("weak-cipher", f"{name} accepted")]


@pytest.mark.parametrize("kind", ["smtp", "imap", "ldap"])
async def test_starttls(tmp_path: Path, kind: str) -> None:
    """The chain behind an SMTP, IMAP or LDAP STARTTLS exchange."""
    pki = shared_pki()
    context = server_context(tmp_path, [pki.leaf.cert, pki.intermediate.cert], pki.leaf.key)
    talker = {"smtp": smtp_talker, "imap": imap_talker, "ldap": ldap_talker}[kind](context)
    async with serve(talker) as port:
        report = await probe(port, starttls=kind)
    assert report.error is None
    assert report.chain == der(pki.leaf.cert, pki.intermediate.cert)
    assert report.protocols == ("TLSv1.2", "TLSv1.3")
    assert report.findings == ()


async def test_starttls_refused_and_nothing_listening(tmp_path: Path) -> None:
    """An SMTP server that declines STARTTLS gives starttls-failed; a closed port gives refused."""
    pki = shared_pki()
    context = server_context(tmp_path, [pki.leaf.cert], pki.leaf.key)
    async with serve(smtp_talker(context, starttls_reply=b"454 4.7.0 TLS not available")) as port:
        report = await probe(port, starttls="smtp")
    assert report.error == "SMTP: SMTP STARTTLS answered '454 4.7.0 TLS not available'"
    assert codes(report) == ["starttls-failed"]
    assert report.chain == () and report.protocols == ()
    refused = await probe(refused_port())
    assert codes(refused) == ["refused"]
    assert refused.error == "connection refused"


def test_system_roots_reads_the_bundle_openssl_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SSL_CERT_FILE names the bundle; a block that does not parse is skipped, duplicates are kept once."""
    root = shared_pki().root.cert
    pem = root.public_bytes(serialization.Encoding.PEM)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pem + b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n" + pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert system_roots() == [root]
