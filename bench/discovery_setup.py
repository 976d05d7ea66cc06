"""What the discovery benchmark scans: TLS listener processes presenting a realistic chain, and a
tree of certificate files in every format `tetra discover files` reads, with decoys among them.

Everything is made before any timing. Certificates come from tests/discovery_pki.py (a root, an
intermediate, leaves signed by it); each certificate file holds its own leaf, so the inventory
records as many distinct certificates as a real tree would, except the Java keystores, which
keytool makes once and which are copied (as the brief for this benchmark asks). PKCS#12 files use
2,048 PBKDF2 iterations (OpenSSL's default) and a passphrase the scan is given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from tests.discovery_pki import Issued, issue

PASSPHRASE = b"bench-passphrase"
PKCS12_ITERATIONS = 2048
LISTENER = Path(__file__).resolve().parent / "discovery_listener.py"

# Share of the tree per kind; the rest of the files are decoys of three sorts.
FILE_MIX: dict[str, float] = {
    "pem": 0.25,  # leaf + intermediate, PEM (.pem, .crt)
    "der": 0.15,  # leaf, DER (.der, .cer)
    "pkcs7": 0.10,  # leaf + intermediate, DER PKCS#7 (.p7b)
    "pkcs12": 0.10,  # key + leaf + intermediate, AES-256-CBC, PBKDF2 2,048 rounds, HMAC-SHA256 (.p12)
    "jks": 0.05,  # a keytool JKS keystore (PrivateKeyEntry, self-signed), copied (.jks)
    "decoy-text": 0.20,  # source and configuration files: read 64 KiB at most, never reported
    "decoy-binary": 0.10,  # random bytes (.bin, .dat)
    "decoy-named": 0.05,  # .pem files holding only a private key: read, reported as no certificate
}
FILES_PER_DIRECTORY = 100


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued

    def leaf(self, name: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None) -> Issued:
        return issue(name, issuer=self.intermediate, names=[name], key=key)


def make_pki() -> Pki:
    root = issue("Bench Discovery Root", issuer=None, ca=True)
    return Pki(root, issue("Bench Discovery Intermediate", issuer=root, ca=True))


def leaf_key(kind: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if kind == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# --- listeners -------------------------------------------------------------------------------------


@dataclass
class Listener:
    """One listener process (discovery_listener.py) and its port."""

    process: subprocess.Popen[str]
    port: int

    def count(self) -> tuple[int, int]:
        """(connections accepted, handshakes completed) so far."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("count\n")
        self.process.stdin.flush()
        accepted, handshakes = self.process.stdout.readline().split()
        return int(accepted), int(handshakes)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Listeners:
    members: list[Listener] = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [m.port for m in self.members]

    @property
    def pids(self) -> list[int]:
        return [m.process.pid for m in self.members]

    def counts(self) -> tuple[int, int]:
        totals = [m.count() for m in self.members]
        return sum(a for a, _ in totals), sum(h for _, h in totals)

    def stop(self) -> None:
        for member in self.members:
            member.stop()


def start_listeners(count: int, pki: Pki, key_kind: str, work: Path) -> Listeners:
    """``count`` listener processes presenting leaf + intermediate (the leaf's key of ``key_kind``)."""
    key = leaf_key(key_kind)
    leaf = pki.leaf("www.bench.test", key)
    chain, key_file = work / "listener-chain.pem", work / "listener-key.pem"
    chain.write_bytes(pem(leaf.cert, pki.intermediate.cert))
    key_file.write_bytes(key_pem(key))
    key_file.chmod(0o600)
    listeners = Listeners()
    try:
        for _ in range(count):
            process = subprocess.Popen(
                [sys.executable, str(LISTENER), "--chain", str(chain), "--key", str(key_file)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert process.stdout is not None
            line = process.stdout.readline().split()
            if len(line) != 2 or line[0] != "ready":
                process.kill()
                raise RuntimeError(f"a listener did not start (exit status {process.wait()})")
            listeners.members.append(Listener(process, int(line[1])))
    except BaseException:
        listeners.stop()
        raise
    return listeners


# --- the file tree ---------------------------------------------------------------------------------


def file_counts(total: int) -> dict[str, int]:
    """How many files of each kind make ``total`` (rounding goes to the first kind)."""
    counts = {kind: int(total * share) for kind, share in FILE_MIX.items()}
    counts["pem"] += total - sum(counts.values())
    return counts


def make_tree(root: Path, total: int, pki: Pki, work: Path) -> dict[str, int]:
    """``total`` files under root/KIND/NNN/ (FILES_PER_DIRECTORY a folder); the count per kind."""
    counts = file_counts(total)
    key = ec.generate_private_key(ec.SECP256R1())  # one key for every leaf: only the certificates differ
    jks = _keytool_keystore(work)
    for kind, count in counts.items():
        for number in range(count):
            folder = root / kind / f"{number // FILES_PER_DIRECTORY:03d}"
            if number % FILES_PER_DIRECTORY == 0:
                folder.mkdir(parents=True)
            name, data = _file(kind, number, pki, key, jks)
            (folder / name).write_bytes(data)
    return counts


def _file(kind: str, number: int, pki: Pki, key: ec.EllipticCurvePrivateKey, jks: bytes) -> tuple[str, bytes]:
    host = f"host{number}.{kind}.bench.test"
    if kind == "pem":
        return f"{host}.{'pem' if number % 2 else 'crt'}", pem(pki.leaf(host, key).cert, pki.intermediate.cert)
    if kind == "der":
        return f"{host}.{'der' if number % 2 else 'cer'}", pki.leaf(host, key).cert.public_bytes(
            serialization.Encoding.DER
        )
    if kind == "pkcs7":
        certs = [pki.leaf(host, key).cert, pki.intermediate.cert]
        return f"{host}.p7b", pkcs7.serialize_certificates(certs, serialization.Encoding.DER)
    if kind == "pkcs12":
        return f"{host}.p12", _pkcs12(pki.leaf(host, key).cert, key, pki.intermediate.cert)
    if kind == "jks":
        return f"{host}.jks", jks
    if kind == "decoy-text":
        suffix = (".py", ".txt", ".json", ".conf")[number % 4]
        return f"file{number}{suffix}", (f"# decoy {number}\n" + "value = 'not a certificate'\n" * 40).encode()
    if kind == "decoy-binary":
        return f"blob{number}.{'bin' if number % 2 else 'dat'}", os.urandom(2048)
    return f"{host}-key.pem", key_pem(key)


def _pkcs12(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, intermediate: x509.Certificate) -> bytes:
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(PKCS12_ITERATIONS)
        .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(PASSPHRASE)
    )
    return pkcs12.serialize_key_and_certificates(b"bench", key, cert, [intermediate], encryption)


def _keytool_keystore(work: Path) -> bytes:
    """A JKS keystore made by keytool once (a P-256 key pair and its self-signed certificate)."""
    if shutil.which("keytool") is None:
        raise RuntimeError("keytool (Java) is needed for the JKS files: install a JDK or pass --files 0")
    path = work / "keytool.jks"
    password = PASSPHRASE.decode()
    subprocess.run(
        [
            *("keytool", "-genkeypair", "-keystore", str(path), "-storetype", "JKS", "-alias", "bench"),
            *("-storepass", password, "-keypass", password, "-keyalg", "EC", "-groupname", "secp256r1"),
            *("-dname", "CN=keytool.bench.test", "-validity", "365"),
        ],
        check=True,
        capture_output=True,
    )
    return path.read_bytes()
