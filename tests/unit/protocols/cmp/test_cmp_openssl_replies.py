"""Replies built by protocols/cmp, judged by the real `openssl cmp` client (OpenSSL 3.0).

Live transactions against a loopback responder (tests/unit/protocols/cmp/cmp_loopback.py):
the client checks protection, transactionID, senderNonce/recipNonce, pvno, and that the
certificate matches its key. Stored replies through -rspin: the client checks protection
and content (it adopts the reply's nonces and transactionID, so those are proven live).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from protocols.cmp import bodies
from protocols.cmp.config import MacLimits
from protocols.cmp.message import decode_message
from protocols.cmp.protection import verify_mac
from protocols.cmp.reply import MacProtection, SignatureProtection, build_reply
from tests.pkilint_check import assert_certificate_lints_clean
from tests.unit.protocols.cmp.cmp_loopback import Responder, serving
from tests.unit.protocols.cmp.cmp_vectors import CA_NAME, SECRET, VECTORS, certificate, server_signer, vector

MAC = ["-ref", "vector", "-secret", "pass:vector-secret", "-recipient", "/CN=CMP-Vector-CA"]
SIGNED = [
    "-cert",
    str(VECTORS / "client.pem"),
    "-key",
    str(VECTORS / "client.key"),
    "-trusted",
    str(VECTORS / "root.pem"),
]
OLD_CERT = str(VECTORS / "issued.pem")
ENROL = ["-newkey", str(VECTORS / "new.key"), "-subject", "/CN=CMP Vector Issued"]


def openssl_cmp(*arguments: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    command = ["openssl", "cmp", "-batch", "-certout", str(tmp_path / "out.pem"), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _issued_matches(tmp_path: Path) -> None:
    issued = certificate("issued.pem")
    assert (tmp_path / "out.pem").read_bytes().strip() == issued.public_bytes(Encoding.PEM).strip()
    assert_certificate_lints_clean(issued.public_bytes(Encoding.DER))


@pytest.mark.parametrize("protection", [MAC, SIGNED], ids=["mac", "signature"])
def test_openssl_accepts_ip_and_pkiconf_in_a_live_transaction(protection: list[str], tmp_path: Path) -> None:
    responder = Responder()
    with serving(responder) as server:
        done = openssl_cmp("-server", server, "-cmd", "ir", *protection, *ENROL, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    _issued_matches(tmp_path)
    assert [m.body_type for m in responder.seen] == ["ir", "certConf"]
    for request, reply in zip(responder.seen, responder.replies, strict=True):
        assert reply.transaction_id == request.transaction_id
        assert reply.recip_nonce == request.sender_nonce
        assert reply.sender_nonce is not None and len(reply.sender_nonce) == 16
        assert reply.pvno == 2


@pytest.mark.parametrize("protection", [MAC, SIGNED], ids=["mac", "signature"])
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["-cmd", "cr", *ENROL], ["cr", "certConf"]),
        (
            ["-cmd", "kur", "-newkey", str(VECTORS / "new.key"), "-oldcert", str(VECTORS / "issued.pem")],
            ["kur", "certConf"],
        ),
        (["-cmd", "p10cr", "-csr", str(VECTORS / "p10.csr")], ["p10cr", "certConf"]),
        (["-cmd", "rr", "-oldcert", OLD_CERT, "-revreason", "1"], ["rr"]),
    ],
    ids=["cp", "kup", "cp-for-p10cr", "rp"],
)
def test_openssl_accepts_cp_kup_and_rp(
    protection: list[str], command: list[str], expected: list[str], tmp_path: Path
) -> None:
    responder = Responder()
    with serving(responder) as server:
        done = openssl_cmp("-server", server, *command, *protection, tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [m.body_type for m in responder.seen] == expected
    if expected[0] == "p10cr":  # the client confirms the id our cp gave
        assert int(responder.seen[1].body["certConf"][0]["certReqId"]) == bodies.P10CR_CERT_REQ_ID
    if expected[0] != "rr":
        _issued_matches(tmp_path)


@pytest.mark.parametrize("protection", [MAC, SIGNED], ids=["mac", "signature"])
def test_openssl_polls_through_waiting_and_poll_rep(protection: list[str], tmp_path: Path) -> None:
    responder = Responder(polls=2)
    with serving(responder) as server:
        done = openssl_cmp("-server", server, "-cmd", "ir", *protection, *ENROL, tmp_path=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [m.body_type for m in responder.seen] == ["ir", "pollReq", "pollReq", "certConf"]
    assert [m.body_type for m in responder.replies] == ["ip", "pollRep", "ip", "pkiconf"]
    _issued_matches(tmp_path)


def test_openssl_accepts_a_granted_implicit_confirm(tmp_path: Path) -> None:
    responder = Responder(grant_implicit_confirm=True)
    with serving(responder) as server:
        done = openssl_cmp("-server", server, "-cmd", "ir", "-implicit_confirm", *MAC, *ENROL, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [m.body_type for m in responder.seen] == ["ir"]  # no certConf: the grant was understood
    assert responder.replies[0].implicit_confirm


def test_implicit_confirm_not_granted_unless_asked(tmp_path: Path) -> None:
    responder = Responder(grant_implicit_confirm=True)
    with serving(responder) as server:
        done = openssl_cmp("-server", server, "-cmd", "ir", *MAC, *ENROL, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [m.body_type for m in responder.seen] == ["ir", "certConf"]
    assert not responder.replies[0].implicit_confirm


@pytest.mark.parametrize("protection", [MAC, SIGNED], ids=["mac", "signature"])
@pytest.mark.parametrize("info_type", ["caCerts", "certReqTemplate"])
def test_openssl_accepts_genp(protection: list[str], info_type: str, tmp_path: Path) -> None:
    """OpenSSL 3.0 checks the genp's protection and header and names each ITAV it received;
    it does not interpret their values (the schema test in test_cmp_bodies.py does)."""
    responder = Responder()
    with serving(responder) as server:
        done = openssl_cmp("-server", server, "-cmd", "genm", "-infotype", info_type, *protection, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"genp contains ITAV of type: id-it-{info_type}" in done.stderr + done.stdout
    assert responder.replies[0].body["genp"][0]["infoValue"].isValue


@pytest.mark.parametrize("protection", [MAC, SIGNED], ids=["mac", "signature"])
def test_openssl_reads_our_error_message(protection: list[str], tmp_path: Path) -> None:
    with serving(Responder(refuse=("cr",))) as server:
        done = openssl_cmp("-server", server, "-cmd", "cr", *protection, *ENROL, tmp_path=tmp_path)
    output = done.stdout + done.stderr  # OpenSSL 3.0 prints the received error on stdout
    assert done.returncode != 0
    assert "PKIFailureInfo: badCertTemplate" in output, output
    assert 'StatusString: "template refused"' in output
    assert not (tmp_path / "out.pem").exists()


async def _stored_ip_exchange(
    request_name: str, protection: MacProtection | SignatureProtection
) -> tuple[bytes, bytes]:
    ir = decode_message(vector(request_name))
    cert_req_id = int(ir.body["ir"][0]["certReq"]["certReqId"])
    sender = CA_NAME if isinstance(protection, MacProtection) else certificate("server.pem").subject
    ip = await build_reply(ir, sender, bodies.cert_rep(bodies.IP, cert_req_id, certificate("issued.pem")), protection)
    cert_conf = decode_message(vector(request_name.replace(".req.", ".certConf.")))
    pki_conf = await build_reply(cert_conf, sender, bodies.pki_conf(), protection)
    return ip, pki_conf


@pytest.mark.parametrize("kind", ["mac", "signature"])
def test_openssl_accepts_stored_ip_with_rspin(kind: str, tmp_path: Path) -> None:
    if kind == "mac":
        key = verify_mac(decode_message(vector("ir-mac.req.der")), SECRET, MacLimits())
        protection: MacProtection | SignatureProtection = MacProtection(key, b"vector")
        arguments = MAC
    else:
        protection = SignatureProtection(server_signer(), certificate("server.pem"), (certificate("root.pem"),))
        arguments = SIGNED
    ip, pki_conf = asyncio.run(_stored_ip_exchange(f"ir-{'mac' if kind == 'mac' else 'sig'}.req.der", protection))
    (tmp_path / "ip.der").write_bytes(ip)
    (tmp_path / "pkiconf.der").write_bytes(pki_conf)
    rspin = f"{tmp_path / 'ip.der'},{tmp_path / 'pkiconf.der'}"
    done = openssl_cmp("-cmd", "ir", *arguments, *ENROL, "-rspin", rspin, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    _issued_matches(tmp_path)


def test_openssl_refuses_a_stored_ip_under_the_wrong_secret(tmp_path: Path) -> None:
    """The control for the -rspin test: the same reply MACed with another secret is refused."""
    key = verify_mac(decode_message(vector("ir-mac.req.der")), SECRET, MacLimits())
    wrong = MacProtection(type(key)(key.algorithm, b"\x00" * len(key.key), key.mac_hash), b"vector")
    ip, pki_conf = asyncio.run(_stored_ip_exchange("ir-mac.req.der", wrong))
    (tmp_path / "ip.der").write_bytes(ip)
    (tmp_path / "pkiconf.der").write_bytes(pki_conf)
    rspin = f"{tmp_path / 'ip.der'},{tmp_path / 'pkiconf.der'}"
    done = openssl_cmp("-cmd", "ir", *MAC, *ENROL, "-rspin", rspin, tmp_path=tmp_path)
    assert done.returncode != 0
    assert not (tmp_path / "out.pem").exists()
