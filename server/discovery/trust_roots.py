"""The operating system's trusted roots, for telling a public chain from an unknown one.

Read from the paths OpenSSL itself uses (ssl.get_default_verify_paths, which honours SSL_CERT_FILE
and SSL_CERT_DIR), not from certifi: the probe should agree with what the hosts' own clients trust.
"""

from __future__ import annotations

import ssl
import warnings
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.utils import CryptographyDeprecationWarning

_END = b"-----END CERTIFICATE-----"


def system_roots() -> list[x509.Certificate]:
    """Every certificate of the system bundle (or of the certificate directory when there is no
    bundle); a block that does not parse is skipped rather than losing the whole store."""
    paths = ssl.get_default_verify_paths()
    if paths.cafile:
        files = [Path(paths.cafile)]
    elif paths.capath and Path(paths.capath).is_dir():
        files = sorted(p for p in Path(paths.capath).iterdir() if p.is_file())
    else:
        files = []
    roots: dict[bytes, x509.Certificate] = {}
    with warnings.catch_warnings():
        # A few long-trusted roots carry a negative serial, which cryptography warns about on
        # every parse; a scan's output is not the place for that.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        for file in files:
            _read_into(roots, file)
    return list(roots.values())


def _read_into(roots: dict[bytes, x509.Certificate], file: Path) -> None:
    try:
        data = file.read_bytes()
    except OSError:
        return
    for block in data.split(_END)[:-1]:
        try:
            cert = x509.load_pem_x509_certificate(block + _END)
        except ValueError:
            continue
        roots.setdefault(cert.fingerprint(hashes.SHA256()), cert)
