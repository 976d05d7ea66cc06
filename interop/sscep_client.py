"""sscep 0.10 (certnanny's SCEP client, built by `make clients`) driven against a ScepTetra.

How sscep behaves, read from its source and seen on the wire (it shapes what the server must take):
- `getca -c PREFIX` writes each certificate of a degenerate PKCS#7 reply to PREFIX-0, PREFIX-1...
  `enroll/getcert/getcrl -c PREFIX` (PREFIX itself absent) then picks, among those files, the
  certificates that issue none of the others: the one with digitalSignature verifies the CertRep
  signature, the one with keyEncipherment is the envelope's recipient (Tetra's RA for both).
- the transactionID is the upper-case hex MD5 of the CSR's SubjectPublicKeyInfo.
- every enrolment is a PKCSReq (messageType 19), a renewal too: `-K old.key -O old.pem` only makes
  the old certificate the signer instead of a self-signed one; sscep never sends RenewalReq.
- CertPoll (GetCertInitial) names the *RA's* subject as issuer (sscep assumes the RA is the CA).
- GetCert asks for issuer = subject of `-O` (with `-s SERIAL`, decimal); GetCRL with `-O CERT`
  asks for CERT's issuer and serial.
- the exit status is the outcome: 0 SUCCESS, 3 PENDING (polling gave up), 70..74 FAILURE with
  failInfo badAlg, badMessageCheck, badRequest, badTime, badCertId; 97 a PKCS#7 error.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from interop.scep_server import ScepTetra

BAD_ALG, BAD_MESSAGE_CHECK, BAD_REQUEST, BAD_TIME, BAD_CERT_ID = 70, 71, 72, 73, 74


@dataclass(frozen=True)
class Outcome:
    status: int
    output: str

    def expect(self, status: int = 0) -> Outcome:
        assert self.status == status, f"sscep exited {self.status}, expected {status}:\n{self.output[-3000:]}"
        return self


class Sscep:
    def __init__(self, binary: Path, server: ScepTetra, directory: Path) -> None:
        self.binary, self.server, self.directory = binary, server, directory
        directory.mkdir(parents=True, exist_ok=True)

    def command(self, operation: str, profile: str, *args: str) -> list[str]:
        return [str(self.binary), operation, "-u", self.server.url(profile), "-v", *args]

    def run(self, operation: str, profile: str, *args: str, timeout: float = 60) -> Outcome:
        done = subprocess.run(self.command(operation, profile, *args), capture_output=True, text=True, timeout=timeout)
        return Outcome(done.returncode, done.stdout + done.stderr)

    def getca(self, profile: str = "") -> Path:
        """`sscep getca`: the prefix of the files it wrote (PREFIX-0, PREFIX-1, ...)."""
        prefix = self.directory / f"ca-{profile or 'default'}.crt"
        self.run("getca", profile, "-c", str(prefix), "-F", "sha256").expect()
        return prefix

    def enroll(
        self,
        profile: str,
        key: Path,
        csr: Path,
        out: Path,
        *,
        cipher: str = "aes",
        digest: str = "sha256",
        extra: tuple[str, ...] = (),
    ) -> Outcome:
        """`sscep enroll` with the CA files of `getca` (the RA picked by sscep itself)."""
        args = ("-c", str(self.getca(profile)), "-k", str(key), "-r", str(csr), "-l", str(out))
        return self.run("enroll", profile, *args, "-E", cipher, "-S", digest, *extra)

    def start_enroll(self, profile: str, key: Path, csr: Path, out: Path, *polling: str) -> subprocess.Popen[str]:
        """`sscep enroll` left running, for a PENDING enrolment it polls for (-t/-n in `polling`)."""
        args = ("-c", str(self.getca(profile)), "-k", str(key), "-r", str(csr), "-l", str(out), *polling)
        return subprocess.Popen(
            self.command("enroll", profile, *args, "-E", "aes", "-S", "sha256"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
