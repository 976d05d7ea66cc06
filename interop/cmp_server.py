"""A real `tetra serve` with CMP on loopback, for the `openssl cmp` interop rows (CMP-14).

    from interop.cmp_server import CmpTetra, start_cmp_tetra

    server = start_cmp_tetra(workdir)
    server.openssl_cmp("-cmd", "ir", "-ref", ref, "-secret", f"pass:{secret}", ...)  # -server/-path/-trusted added
    server.add_secret("device-ref", "device")   # `tetra cmp secret add`; the generated secret

What `tetra init` makes, plus:

- profile ``held``: a copy of the shipped ``device`` profile with ``approval = "manual"``,
  reached at ``/.well-known/cmp/p/held`` (an ip with status waiting until `tetra requests approve`);
- a device maker's CA (``factory-ca.pem``, not Tetra's) listed in ``[cmp] trust_anchors``, so a
  certificate it issued may sign ir/cr/p10cr;
- ``[cmp] poll_interval = 1`` so that openssl's polling for ``held`` does not wait 10 s a round.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.integration.est_support import _profile_from_device, factory_ca
from tests.tetra_process import TetraProcess, free_port, init_ca

HELD = "held"
# Lines put at the top of the [cmp] section `tetra init` writes (default_profile = "device").
CMP_SETTINGS = 'trust_anchors = ["factory-ca.pem"]\npoll_interval = 1\n'


class CmpTetra(TetraProcess):
    host = "127.0.0.1"

    def __init__(self, directory: Path, http_port: int, https_port: int, log: Path) -> None:
        self.directory = directory
        self.http_port = http_port
        self.https_port = https_port
        self.maker: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]  # the device maker's CA and key
        super().__init__(directory / "tetra.toml", {}, log)

    @property
    def root(self) -> Path:
        return self.directory / "ca" / "root.pem"

    @property
    def issuing_ca(self) -> Path:
        return self.directory / "ca" / "issuing-ca.pem"

    @property
    def factory_ca(self) -> Path:
        return self.directory / "factory-ca.pem"

    @property
    def server(self) -> str:
        """What `openssl cmp -server` takes: host:port of the plain-HTTP listener."""
        return f"{self.host}:{self.http_port}"

    @property
    def tls_options(self) -> tuple[str, ...]:
        """The `openssl cmp` options that send the request over the HTTPS listener instead
        (Tetra's TLS certificate names 127.0.0.1 and chains to the CA root)."""
        return ("-server", f"{self.host}:{self.https_port}", "-tls_used", "-tls_trusted", str(self.root))

    @property
    def ocsp_url(self) -> str:
        return f"http://{self.server}/ocsp"

    @staticmethod
    def path(profile: str = "") -> str:
        """What `openssl cmp -path` takes: the default profile's path or a profile's own."""
        return ".well-known/cmp" + (f"/p/{profile}" if profile else "")

    def add_secret(self, reference: str, profile: str) -> str:
        """`tetra cmp secret add REF --profile P`: the generated secret (the last line of stdout)."""
        return self.cli("cmp", "secret", "add", reference, "--profile", profile).strip().splitlines()[-1]

    def openssl_cmp(self, *args: str, profile: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """`openssl cmp` against this server (plain HTTP; a later -server option wins, see
        tls_options); replies are judged against the CA root (`-trusted`).
        Its log (info lines on stdout, errors on stderr) is the result's stdout, in order."""
        command = self.openssl_cmp_command(*args, profile=profile)
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)

    def openssl_cmp_command(self, *args: str, profile: str = "") -> list[str]:
        common = ("-server", self.server, "-path", self.path(profile), "-trusted", str(self.root))
        return ["openssl", "cmp", *common, *args]

    def certificate_status(self, serial: int) -> str:
        """The status `tetra inventory list` shows for a serial number ("missing" if not listed)."""
        for line in self.cli("certs", "list").splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == f"{serial:x}":
                return fields[2]
        return "missing"

    def certificate_count(self) -> int:
        """Certificates in the store: "nothing issued" is this number not moving."""
        with sqlite3.connect(self.directory / "tetra.db") as db:
            return int(db.execute("SELECT count(*) FROM certificates").fetchone()[0])

    def pending_request_ids(self) -> list[int]:
        """The ids `tetra requests list --status pending` shows."""
        lines = self.cli("requests", "list", "--status", "pending").splitlines()
        return [int(line.split()[0]) for line in lines if line.split() and line.split()[0].isdigit()]


def prepare_cmp_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The held profile, the device maker's CA and the extra [cmp] settings, in a `tetra init`
    dir; the maker's CA certificate and key."""
    _profile_from_device(directory / "profiles", HELD, approval="manual")
    maker = factory_ca(directory)
    config = directory / "tetra.toml"
    text = config.read_text()
    assert "\n[cmp]\n" in text, "tetra init no longer writes a [cmp] section: update interop/cmp_server.py"
    config.write_text(text.replace("\n[cmp]\n", f"\n[cmp]\n{CMP_SETTINGS}", 1))
    return maker


def start_cmp_tetra(workdir: Path) -> CmpTetra:
    """A fresh `tetra init` in workdir/tetra with the CMP test additions, served on free ports."""
    http_port, https_port = free_port(), free_port()
    directory = workdir / "tetra"
    init_ca(directory, http_port, https_port)
    maker = prepare_cmp_ca(directory)
    server = CmpTetra(directory, http_port, https_port, workdir / "tetra.log")
    server.maker = maker
    server.wait_ready(f"http://127.0.0.1:{http_port}/healthz", timeout=30)
    return server
