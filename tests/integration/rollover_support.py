"""What the rollover tests share: the app in this process with every protocol that announces a
next CA, `tetra` commands run in a thread on the same store, and the checks a relying party
makes (openssl verify, OCSP, CRL, the announcements of EST, SCEP and CMP)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from protocols.cmp.bodies import ID_IT_ROOT_CA_CERT, ID_IT_ROOT_CA_UPDATE
from server.app import CA, build_app
from server.cli import main
from server.config import ServerConfig
from server.wiring import read_config
from tests import cmp_client
from tests.integration.operator_api import MANAGE_ON_HTTP, serve_on_http
from tests.revocation_support import check_ocsp, request_der

Client = TestClient[Any, Any]
CMP_REF, CMP_SECRET = "rollover-ref", b"rollover-shared-secret"
PROTOCOLS = '["ocsp", "crl", "est", "scep", "cmp"]'
SECTIONS = """
[scep]
default_profile = "device"

[scep.profiles.device]
challenge = "rollover-challenge"

[cmp]
default_profile = "device"
"""


def parent_key(ca_dir: Path, key: str = "keys/root.key") -> list[str]:
    return ["--parent-key", str(ca_dir / key), "--parent-passphrase-file", str(ca_dir / "secrets/passphrase")]


def server_config(ca_dir: Path, db_url: str) -> ServerConfig:
    config = ca_dir / "tetra.toml"
    if "[cmp]" not in config.read_text():
        config.write_text(config.read_text() + SECTIONS)
    environ = {"TETRA_DATABASE__URL": db_url, "TETRA_SERVER__PROTOCOLS": PROTOCOLS, **MANAGE_ON_HTTP}
    environ["TETRA_OCSP__RESPONDER_COUNTRY"] = "US"  # responder certificates lint clean under the BRs
    return read_config(config, environ=environ)


async def start(aiohttp_client: Callable[..., Any], ca_dir: Path, db_url: str) -> tuple[Client, dict[str, str]]:
    """The served app (the management API on its HTTP listener) and an administrator's Authorization header."""
    client, auth = await serve_on_http(aiohttp_client, build_app(server_config(ca_dir, db_url)))
    await client.app[CA].credentials.create_mac_key("cmp", key_id=CMP_REF, profile="device", secret=CMP_SECRET)
    return client, auth


def tetra(ca_dir: Path, *args: str) -> tuple[int, str, str]:
    """`tetra ARGS --config <ca_dir>/tetra.toml` in this process: (exit code, stdout, stderr).
    The store is the one TETRA_DATABASE__URL names (the test sets it)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--config", str(ca_dir / "tetra.toml")])
    return code, out.getvalue(), err.getvalue()


async def tetra_ok(ca_dir: Path, *args: str) -> str:
    code, out, err = await asyncio.to_thread(tetra, ca_dir, *args)
    assert code == 0, err
    return out


async def roll_root_over(ca_dir: Path, out_dir: Path) -> tuple[x509.Certificate, x509.Certificate, x509.Certificate]:
    """`tetra ca rollover root --new-key` with the demo root's key; its newWithNew, newWithOld, oldWithNew."""
    passphrase = str(ca_dir / "secrets/passphrase")
    await tetra_ok(
        ca_dir, "ca", "rollover", "root", "--new-key", *parent_key(ca_dir),
        "--out-dir", str(out_dir), "--passphrase-file", passphrase,
    )  # fmt: skip
    nwn, nwo, own = (
        x509.load_pem_x509_certificate((out_dir / f"root.2-{kind}.pem").read_bytes())
        for kind in ("newWithNew", "newWithOld", "oldWithNew")
    )
    return nwn, nwo, own


async def until(check: Callable[[], bool], what: str, seconds: float = 10) -> None:
    for _ in range(int(seconds * 10)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {seconds}s: {what}")


async def enroll(client: Client, auth: dict[str, str], name: str) -> tuple[x509.Certificate, x509.Certificate]:
    """A leaf through the management API, and the CA certificate that signed it."""
    from tests.helpers import make_csr

    csr, _ = make_csr([name])
    body = {"csr": csr.public_bytes(Encoding.PEM).decode(), "profile": "tls-server"}
    resp = await client.post("/api/v1/enroll", headers=auth, json=body)
    assert resp.status == 201, await resp.text()
    answer = await resp.json()
    leaf = x509.load_pem_x509_certificate(answer["certificate"].encode())
    return leaf, x509.load_pem_x509_certificates(answer["chain"].encode())[0]


async def get(client: Client, path: str) -> bytes:
    resp = await client.get(path)
    assert resp.status == 200, f"{path}: {resp.status}"
    return await resp.read()


async def est_cacerts(client: Client) -> list[x509.Certificate]:
    from ca.cms.verify import parse_certs_only

    return list(parse_certs_only(base64.b64decode(await get(client, "/.well-known/est/cacerts"))))


async def scep_next_ca(client: Client) -> list[x509.Certificate]:
    from asn1crypto import cms

    resp = await client.get("/scep?operation=GetNextCACert")
    if resp.status != 200:
        return []
    signed = cms.ContentInfo.load(await resp.read())["content"]
    return [x509.load_der_x509_certificate(c.chosen.dump()) for c in signed["certificates"]]


async def ocsp_status(client: Client, leaf: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
    resp = await client.post(
        "/ocsp", data=request_der(leaf, issuer), headers={"Content-Type": "application/ocsp-request"}
    )
    assert resp.status == 200
    answer = check_ocsp(await resp.read(), issuer)
    assert answer.serial_number == leaf.serial_number
    return answer.certificate_status


async def root_ca_key_update(
    client: Client, old_root: x509.Certificate | None = None
) -> tuple[bytes, bytes, bytes] | None:
    """CMP genm rootCaKeyUpdate (RFC 9483 §4.3.2), asked as OpenSSL 3.0 asks (infoType
    rootCaKeyUpdate) or, given ``old_root``, with rootCaCert naming it: the DER of newWithNew and
    the explicitly tagged newWithOld [0] and oldWithNew [1], or None for "no update"."""
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_alt_modules import rfc9810

    mac = cmp_client.Client(cmp_client.Mac(CMP_REF.encode(), CMP_SECRET))
    question = (
        cmp_client.itav(ID_IT_ROOT_CA_UPDATE)
        if old_root is None
        else cmp_client.itav(ID_IT_ROOT_CA_CERT, old_root.public_bytes(Encoding.DER))
    )
    request = mac.genm(question)
    resp = await client.post("/.well-known/cmp", data=request.der, headers={"Content-Type": "application/pkixcmp"})
    assert resp.status == 200
    reply = cmp_client.read_reply(await resp.read())
    assert reply.kind == "genp", reply.text
    cmp_client.check_protection(reply, mac.protection)
    (itav,) = reply.message.body["genp"]
    assert str(itav["infoType"]) == ID_IT_ROOT_CA_UPDATE
    value = itav["infoValue"]
    if not value.isValue:
        return None
    content, _ = decoder.decode(bytes(value), asn1Spec=rfc9810.RootCaKeyUpdateContent())
    new_with_new, new_with_old, old_with_new = (
        encoder.encode(content[k]) for k in ("newWithNew", "newWithOld", "oldWithNew")
    )
    return new_with_new, new_with_old, old_with_new


def openssl_verify(
    tmp: Path, leaf: x509.Certificate, trusted: list[x509.Certificate], untrusted: list[x509.Certificate]
) -> None:
    """`openssl verify` of ``leaf`` with only ``trusted`` as anchors: what a relying party does."""

    def write(name: str, certs: list[x509.Certificate]) -> str:
        (tmp / name).write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in certs))
        return str(tmp / name)

    cmd = ["openssl", "verify", "-CAfile", write("trusted.pem", trusted)]
    if untrusted:
        cmd += ["-untrusted", write("untrusted.pem", untrusted)]
    result = subprocess.run([*cmd, write("leaf.pem", [leaf])], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
