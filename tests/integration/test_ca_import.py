"""`tetra ca csr` and `tetra ca import`: an issuing CA certified by an external root made with the
`openssl` CLI (as a company's offline root or ADCS would certify it), on SQLite and PostgreSQL.

CAL-04: each bad certificate is refused with its reason, audited as ``ca.import_refused``, and
leaves the generation pending (the core has nothing to issue from) until a good one is imported.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import select

from ca.authorities.lineage import families, state_of
from ca.authorities.model import Kind, State
from ca.authorities.store import AuthorityStore
from ca.csr import enrollment_from_csr
from ca.enrollment import AuthMethod, Issued, Requester
from ca.errors import IssuerUnavailable
from ca.service import CertificateAuthority
from ca.store.tables import audit_log
from server.config import ServerConfig
from server.wiring import build_ca, read_config
from tests.cli_here import tetra_here
from tests.helpers import enroll, make_csr
from tests.integration.test_cli import assert_clean_error
from tests.pkilint_check import assert_certificate_lints_clean

CA_EXTENSIONS = (
    "basicConstraints=critical,CA:TRUE,pathlen:0\n"
    "keyUsage=critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier=hash\n"
    "authorityKeyIdentifier=keyid:always\n"
)
LEAF_EXTENSIONS = "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
OPERATOR = Requester("test-operator", AuthMethod.OPERATOR)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def _external_root(directory: Path, cn: str) -> tuple[Path, Path]:
    """A self-signed root from `openssl req -x509`: its key and certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    key, cert = directory / f"{cn}.key", directory / f"{cn}.pem"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key)]
    ca = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    _openssl("req", "-x509", *ec, "-out", str(cert), "-subj", f"/O=Example Corp/CN={cn}", "-days", "3650", *ca)
    return key, cert


def _sign(csr: Path, root: tuple[Path, Path], out: Path, extensions: str) -> Path:
    """The external root signs a CSR with `openssl x509 -req` and only the given extensions."""
    extfile = out.with_suffix(".cnf")
    extfile.write_text(extensions)
    issuer = ["-CA", str(root[1]), "-CAkey", str(root[0]), "-set_serial", str(x509.random_serial_number())]
    _openssl(
        "x509", "-req", "-in", str(csr), *issuer, "-days", "1000", "-sha256", "-extfile", str(extfile), "-out", str(out)
    )
    return out


def _env(db_url: str) -> dict[str, str]:
    return {"TETRA_DATABASE__URL": db_url}


def _csr(ca_dir: Path, db_url: str, out: Path, *more: str) -> subprocess.CompletedProcess[str]:
    cfg = str(ca_dir / "tetra.toml")
    return tetra_here("ca", "csr", "--config", cfg, "--name", "ext-ca", "--subject", "CN=Example Issuing CA,O=Example",
                      "--out", str(out), "--out-dir", str(ca_dir / "ca"), "--passphrase-file",
                      str(ca_dir / "secrets" / "passphrase"), *more, env=_env(db_url))  # fmt: skip


def _import(ca_dir: Path, db_url: str, cert: Path, *more: str) -> subprocess.CompletedProcess[str]:
    cfg = str(ca_dir / "tetra.toml")
    return tetra_here("ca", "import", "--config", cfg, "--name", "ext-ca", "--cert", str(cert), *more, env=_env(db_url))


def _config(ca_dir: Path, db_url: str) -> ServerConfig:
    return read_config(ca_dir / "tetra.toml", environ=_env(db_url))


async def _audit(ca: CertificateAuthority, action: str) -> list[dict[str, object]]:
    rows = await ca.db.read(lambda c: list(c.execute(select(audit_log).where(audit_log.c.action == action))))
    return [{"target": r.target, "actor": r.actor, **json.loads(r.details)} for r in rows]


async def _issue_leaf(ca: CertificateAuthority, name: str) -> Issued:
    csr, _ = make_csr([name], cn=name)
    outcome = await enroll(ca, enrollment_from_csr(csr, protocol="cli", profile_name="ext-client", requester=OPERATOR))
    assert isinstance(outcome, Issued)
    return outcome


def _add_profile(ca_dir: Path) -> None:
    profile = (ca_dir / "profiles" / "tls-client.toml").read_text()
    (ca_dir / "profiles" / "ext-client.toml").write_text('issuer = "ext-ca"\n' + profile)


async def test_import_under_an_external_root_then_issue(ca_dir: Path, db_url: str, tmp_path: Path) -> None:
    """CAL-04 (the accepted path): csr -> openssl signs -> import; the registry holds the generation
    and the external root; a CA built from the config issues under the family, and the leaf verifies
    with `openssl verify` against the external root. The CA certificate and the leaf pass pkilint."""
    root = _external_root(tmp_path / "ext", "Ext Root")
    made = _csr(ca_dir, db_url, tmp_path / "ext-ca.csr")
    assert made.returncode == 0, made.stderr
    assert (ca_dir / "ca" / "ext-ca.key").read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY")
    request = x509.load_pem_x509_csr((tmp_path / "ext-ca.csr").read_bytes())
    assert request.is_signature_valid and request.subject.rfc4514_string() == "CN=Example Issuing CA,O=Example"
    signed = _sign(tmp_path / "ext-ca.csr", root, tmp_path / "ext-ca.pem", CA_EXTENSIONS)

    imported = _import(ca_dir, db_url, signed, "--chain", str(root[1]))
    assert imported.returncode == 0, imported.stderr
    assert "registered root ext-ca-root" in imported.stdout

    _add_profile(ca_dir)
    ca = await build_ca(_config(ca_dir, db_url))
    try:
        records = {a.name: a for a in await AuthorityStore(ca.db).all()}
        generation, ext_root = records["ext-ca"], records["ext-ca-root"]
        assert generation.kind is Kind.ISSUING and generation.parent == "ext-ca-root" and generation.chain == ()
        assert generation.key is not None and generation.key.key_file == "ca/ext-ca.key"
        assert (
            ext_root.kind is Kind.ROOT and ext_root.certificate.subject.rfc4514_string() == "CN=Ext Root,O=Example Corp"
        )
        assert state_of(generation, families(records.values())["ext-ca"], ca.clock.now()) is State.ACTIVE
        assert ext_root.certificate in ca.roots  # /roots.pem and the trust list carry it
        assert [e["target"] for e in await _audit(ca, "ca.csr_created")] == ["ca/ext-ca"]
        assert [e["target"] for e in await _audit(ca, "ca.certificate_imported")] == ["ca/ext-ca"]
        assert [e["target"] for e in await _audit(ca, "ca.root_registered")] == ["ca/ext-ca-root"]

        issued = await _issue_leaf(ca, "leaf.example.com")
        assert issued.issuer == "ext-ca" and ca.current_issuer("ext-ca").name == "ext-ca"
        leaf_pem, chain_pem = tmp_path / "leaf.pem", tmp_path / "chain.pem"
        leaf_pem.write_bytes(issued.certificate.public_bytes(Encoding.PEM))
        chain_pem.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in issued.chain))
        verified = subprocess.run(["openssl", "verify", "-CAfile", str(root[1]), "-untrusted", str(chain_pem),
                                   str(leaf_pem)], capture_output=True, text=True)  # fmt: skip
        assert verified.returncode == 0 and verified.stdout.strip().endswith("OK"), verified.stdout + verified.stderr
        assert_certificate_lints_clean(generation.der or b"")
        assert_certificate_lints_clean(issued.certificate.public_bytes(Encoding.DER))
    finally:
        await ca.close()


def _future_certificate(tmp_path: Path, csr_path: Path, root: tuple[Path, Path]) -> Path:
    """A CA certificate for the pending key whose notBefore is tomorrow (OpenSSL 3.0's `x509 -req`
    cannot set one): made with cryptography, signed by the external root's key."""
    root_key = serialization.load_pem_private_key(root[0].read_bytes(), None)
    root_cert = x509.load_pem_x509_certificate(root[1].read_bytes())
    request = x509.load_pem_x509_csr(csr_path.read_bytes())
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    cert = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(root_cert.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .sign(root_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    out = tmp_path / "future.pem"
    out.write_bytes(cert.public_bytes(Encoding.PEM))
    return out


async def test_bad_certificates_are_refused_and_nothing_activates(ca_dir: Path, db_url: str, tmp_path: Path) -> None:
    """CAL-04: a certificate for another key, a non-CA certificate, a chain that does not reach the
    given root (and none when the root is not one we trust), and one not yet valid: each refused in
    one line naming its reason, each audited as ca.import_refused; the generation stays pending and
    the core has no issuer for the family. A good certificate is imported afterwards."""
    root = _external_root(tmp_path / "ext", "Ext Root")
    other_root = _external_root(tmp_path / "other", "Other Root")
    csr = tmp_path / "ext-ca.csr"
    assert _csr(ca_dir, db_url, csr).returncode == 0
    stranger = tmp_path / "stranger.csr"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
             str(tmp_path / "stranger.key"), "-out", str(stranger), "-subj", "/CN=Example Issuing CA")  # fmt: skip
    cases = [
        (_sign(stranger, root, tmp_path / "other-key.pem", CA_EXTENSIONS), [str(root[1])], "another key"),
        (_sign(csr, root, tmp_path / "not-ca.pem", LEAF_EXTENSIONS), [str(root[1])], "not a CA certificate"),
        (_sign(csr, root, tmp_path / "good.pem", CA_EXTENSIONS), [str(other_root[1])], "does not reach the given root"),
        (tmp_path / "good.pem", [], "does not reach a root this CA trusts"),
        (_future_certificate(tmp_path, csr, root), [str(root[1])], "its validity has not begun"),
    ]
    for cert, chain, reason in cases:
        refused = _import(ca_dir, db_url, cert, *(["--chain", *chain] if chain else []))
        assert_clean_error(refused, "import refused", reason)
        assert refused.returncode == 2

    _add_profile(ca_dir)
    ca = await build_ca(_config(ca_dir, db_url))
    try:
        records = await AuthorityStore(ca.db).all()
        pending = next(a for a in records if a.name == "ext-ca")
        assert pending.der is None and pending.activate_at is None
        assert not any(a.kind is Kind.ROOT and a.name.startswith("ext-ca-root") for a in records)
        with pytest.raises(IssuerUnavailable):
            ca.current_issuer("ext-ca")
        refusals = await _audit(ca, "ca.import_refused")
        assert len(refusals) == len(cases)
        for event, (_, _, reason) in zip(refusals, cases, strict=True):
            assert event["target"] == "ca/ext-ca" and reason in str(event["reason"])
        assert await _audit(ca, "ca.certificate_imported") == []
    finally:
        await ca.close()

    assert _import(ca_dir, db_url, tmp_path / "good.pem", "--chain", str(root[1])).returncode == 0
    ca = await build_ca(_config(ca_dir, db_url))
    try:
        assert ca.current_issuer("ext-ca").name == "ext-ca"
        await _issue_leaf(ca, "after.example.com")
    finally:
        await ca.close()


async def test_rollover_under_the_external_root(ca_dir: Path, db_url: str, tmp_path: Path) -> None:
    """CAL-04 (rollover): a second `ca csr` for an existing CA needs --rollover and makes the next
    generation, pending until imported; the root, known already, is not registered twice; a
    configured CA's name and a second pending CSR are refused in one line, with nothing made."""
    root = _external_root(tmp_path / "ext", "Ext Root")
    assert _csr(ca_dir, db_url, tmp_path / "1.csr").returncode == 0
    assert _import(ca_dir, db_url, _sign(tmp_path / "1.csr", root, tmp_path / "1.pem", CA_EXTENSIONS),
                   "--chain", str(root[1])).returncode == 0  # fmt: skip

    assert_clean_error(_csr(ca_dir, db_url, tmp_path / "x.csr"), "CA ext-ca already exists", "--rollover")
    assert not (tmp_path / "x.csr").exists() and not (ca_dir / "ca" / "ext-ca.2.key").exists()

    rolled = _csr(ca_dir, db_url, tmp_path / "2.csr", "--rollover")
    assert rolled.returncode == 0 and "generation 2" in rolled.stdout, rolled.stderr
    assert (ca_dir / "ca" / "ext-ca.2.key").exists()
    assert_clean_error(_csr(ca_dir, db_url, tmp_path / "y.csr", "--rollover"), "awaiting its certificate")
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    signed = _sign(tmp_path / "2.csr", root, tmp_path / "2.pem", CA_EXTENSIONS)
    imported = _import(ca_dir, db_url, signed, "--chain", str(root[1]), "--activate-at", later)
    assert imported.returncode == 0, imported.stderr
    assert "registered root" not in imported.stdout

    _add_profile(ca_dir)
    ca = await build_ca(_config(ca_dir, db_url))
    try:
        records = {a.name: a for a in await AuthorityStore(ca.db).all()}
        assert records["ext-ca.2"].generation == 2 and records["ext-ca.2"].der is not None
        assert ca.current_issuer("ext-ca").name == "ext-ca"  # until its activation time
        assert ca.staged_successor("ext-ca") == records["ext-ca.2"].certificate
        assert sum(1 for a in records.values() if a.kind is Kind.ROOT) == 2  # the config's and the external one
        await _issue_leaf(ca, "before-rollover.example.com")
    finally:
        await ca.close()

    issuer = read_config(ca_dir / "tetra.toml").default_issuer
    refused = tetra_here("ca", "csr", "--config", str(ca_dir / "tetra.toml"), "--name", issuer, "--subject", "CN=x",
                         "--out", str(tmp_path / "z.csr"), "--out-dir", str(tmp_path / "keys"), "--passphrase-file",
                         str(ca_dir / "secrets" / "passphrase"), env=_env(db_url))  # fmt: skip
    assert_clean_error(refused, f"CA {issuer} already exists", "--rollover")
    assert not (tmp_path / "keys").exists() and not (tmp_path / "z.csr").exists()
