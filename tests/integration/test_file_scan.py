"""scan_paths over a real directory tree: certificate files found, everything else left quiet,
and the walk kept inside its roots, out of loops and away from huge or unreadable files.

Reliability: CLM-07 (a scan of hostile trees: symlinks out of the root, symlink cycles, a 1 GiB
file, unreadable files, FIFOs and thousands of ordinary files cost no more than a stat and a read each).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from server.discovery.file_scan import FileReport, scan_paths
from tests.unit.ca.inventory.sample_files import Chain, make_chain, needs_openssl, openssl_pkcs12


@pytest.fixture
def chain(tmp_path: Path) -> Chain:
    return make_chain(tmp_path / "material")


def _by_path(reports: list[FileReport], root: Path) -> dict[str, FileReport]:
    result = {str(report.path.relative_to(root)): report for report in reports}
    assert len(result) == len(reports), "a file reported twice"
    return result


@needs_openssl
def test_finds_certificates_and_ignores_the_rest(chain: Chain, tmp_path: Path) -> None:
    """CLM-07: only containers are reported; broken ones with their reason."""
    root = tmp_path / "tree"
    (root / "etc" / "ssl").mkdir(parents=True)
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "etc" / "ssl" / "server.pem").write_bytes(chain.leaf_pem.read_bytes() + chain.root_pem.read_bytes())
    (root / "etc" / "ssl" / "no-extension").write_bytes(chain.root.public_bytes(Encoding.DER))
    openssl_pkcs12(chain, root / "etc" / "ssl" / "bundle.pfx", "s3cret")
    (root / "etc" / "ssl" / "server.key").write_bytes(chain.key_pem.read_bytes())
    (root / "etc" / "ssl" / "broken.crt").write_bytes(b"this was a certificate once\n")
    for index in range(400):
        (root / "src" / "pkg" / f"module_{index}.py").write_text(f"VALUE = {index}\n" * 20)
    (root / "src" / "numbers.csv").write_text("0,1,2\n3,4,5\n")  # starts with '0' (0x30), a DER SEQUENCE tag
    (root / "src" / "blob.bin").write_bytes(b"\x30\x82\xff\xff" + bytes(100))  # a SEQUENCE not spanning the file

    started = time.monotonic()
    reports = _by_path(list(scan_paths([root], passphrases=[b"s3cret"])), root)
    assert time.monotonic() - started < 2

    assert set(reports) == {
        "etc/ssl/server.pem",
        "etc/ssl/no-extension",
        "etc/ssl/bundle.pfx",
        "etc/ssl/server.key",
        "etc/ssl/broken.crt",
    }
    pem = reports["etc/ssl/server.pem"].container
    assert pem is not None and pem.kind == "pem" and pem.certificates == (chain.leaf, chain.root)
    der = reports["etc/ssl/no-extension"].container
    assert der is not None and der.kind == "der" and der.certificates == (chain.root,)
    pfx = reports["etc/ssl/bundle.pfx"].container
    assert pfx is not None and pfx.kind == "pkcs12" and pfx.certificates == (chain.leaf, chain.root)
    assert reports["etc/ssl/server.key"] == FileReport(
        root / "etc/ssl/server.key", None, "a private key, no certificate"
    )
    assert reports["etc/ssl/broken.crt"].skipped == "not PEM, DER or a Java keystore"


def test_symlinks_out_of_the_root_inside_it_and_in_cycles(chain: Chain, tmp_path: Path) -> None:
    """CLM-07: a link to /etc is reported, not followed; a link to a directory inside the root is
    walked once (its files are not reported twice); cycles end."""
    root = tmp_path / "tree"
    (root / "certs").mkdir(parents=True)
    (root / "certs" / "leaf.crt").write_bytes(chain.leaf_pem.read_bytes())
    (root / "certs" / "also-leaf.crt").symlink_to("leaf.crt")
    (root / "alias").symlink_to("certs")
    (root / "certs" / "back-to-root").symlink_to("..")
    (root / "loop-a.pem").symlink_to("loop-b.pem")
    (root / "loop-b.pem").symlink_to("loop-a.pem")
    (root / "system").symlink_to("/etc")
    outside = tmp_path / "outside.pem"
    outside.write_bytes(chain.root_pem.read_bytes())
    (root / "sneaky.pem").symlink_to(outside)

    reports = _by_path(list(scan_paths([root])), root)
    assert reports.pop("system") == FileReport(root / "system", None, f"symlink out of {root}")
    assert reports.pop("sneaky.pem") == FileReport(root / "sneaky.pem", None, f"symlink out of {root}")
    loops = {name: reports.pop(name).skipped for name in ("loop-a.pem", "loop-b.pem")}
    assert loops == {
        "loop-a.pem": "Too many levels of symbolic links",
        "loop-b.pem": "Too many levels of symbolic links",
    }
    (found,) = reports.values()
    assert found.container is not None and found.container.certificates == (chain.leaf,)
    assert found.path in {root / "alias" / "leaf.crt", root / "alias" / "also-leaf.crt"}


def test_a_root_given_through_a_symlink_is_its_own_boundary(chain: Chain, tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "a.pem").write_bytes(chain.leaf_pem.read_bytes())
    (tmp_path / "link").symlink_to("real")
    (report,) = scan_paths([tmp_path / "link"])
    assert report.path == tmp_path / "link" / "a.pem" and report.container is not None


def test_a_huge_sparse_file_is_skipped_by_its_size(tmp_path: Path) -> None:
    """CLM-07: 1 GiB (sparse, made with truncate) is refused from stat() alone, in milliseconds."""
    root = tmp_path / "tree"
    root.mkdir()
    huge = root / "huge.pem"
    with huge.open("wb") as handle:
        handle.truncate(1024**3)
    started = time.monotonic()
    reports = list(scan_paths([root]))
    assert time.monotonic() - started < 0.5
    assert reports == [FileReport(huge, None, "larger than 8 MiB")]
    assert list(scan_paths([huge], max_file_bytes=1000 * 1024**2)) == [FileReport(huge, None, "larger than 1000 MiB")]
    assert list(scan_paths([huge], max_file_bytes=10)) == [FileReport(huge, None, "larger than 10 bytes")]


_REPORT_AS_NOBODY = """
import json, sys
from pathlib import Path
from server.discovery.file_scan import scan_paths
print(json.dumps([[str(r.path), r.skipped] for r in scan_paths([Path(sys.argv[1])])]))
"""


def _scan_as_unprivileged(root: Path) -> list[tuple[Path, str | None]]:
    """The scan's (path, skipped) pairs, run as this user or, under root (whom chmod 000 does not
    stop), as nobody through setpriv."""
    if os.geteuid() != 0:
        return [(report.path, report.skipped) for report in scan_paths([root])]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: chmod 000 does not stop root from reading")
    command = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", sys.executable, "-c", _REPORT_AS_NOBODY]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([*command, str(root)], capture_output=True, env=environment, timeout=60, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot run as nobody: {result.stderr.decode(errors='replace')[-200:]}")
    return [(Path(path), skipped) for path, skipped in json.loads(result.stdout)]


def test_unreadable_files_and_directories_are_skipped_with_the_os_reason(chain: Chain) -> None:
    """CLM-07: chmod 000 on a certificate and on a directory: each reported with the OS's reason,
    the rest of the tree still scanned."""
    with tempfile.TemporaryDirectory() as name:  # under /tmp, which nobody can traverse
        root = Path(name)
        root.chmod(0o755)
        secret = root / "secret.pem"
        secret.write_bytes(chain.leaf_pem.read_bytes())
        secret.chmod(0)
        closed = root / "closed"
        closed.mkdir()
        (closed / "inside.pem").write_bytes(chain.leaf_pem.read_bytes())
        closed.chmod(0)
        (root / "open.pem").write_bytes(chain.leaf_pem.read_bytes())
        (root / "open.pem").chmod(0o644)
        try:
            reports = _scan_as_unprivileged(root)
        finally:
            closed.chmod(0o700)
    assert reports == [  # a directory's files first, then its subdirectories
        (root / "open.pem", None),
        (secret, "Permission denied"),
        (closed, "Permission denied"),
    ]


def test_non_regular_files_are_not_opened(chain: Chain, tmp_path: Path) -> None:
    """A FIFO named like a certificate would block a reader forever: it is passed over in a walk
    and reported when named explicitly."""
    root = tmp_path / "tree"
    root.mkdir()
    fifo = root / "pipe.pem"
    os.mkfifo(fifo)
    (root / "real.pem").write_bytes(chain.leaf_pem.read_bytes())
    assert [report.path.name for report in scan_paths([root])] == ["real.pem"]
    assert list(scan_paths([fifo])) == [FileReport(fifo, None, "not a regular file")]


def test_named_files_and_missing_paths(chain: Chain, tmp_path: Path) -> None:
    """A file named explicitly is reported whatever it holds; a missing root says so."""
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    missing = tmp_path / "missing"
    reports = list(scan_paths([text, missing, chain.leaf_pem]))
    assert reports[:2] == [
        FileReport(text, None, "not PEM, DER or a Java keystore"),
        FileReport(missing, None, "No such file or directory"),
    ]
    assert reports[2].container is not None and reports[2].container.certificates == (chain.leaf,)


def test_a_file_reached_twice_is_reported_once(chain: Chain, tmp_path: Path) -> None:
    """A hard link, a root named twice and a file named inside a root already walked."""
    root = tmp_path / "tree"
    root.mkdir()
    first = root / "a.pem"
    first.write_bytes(chain.leaf_pem.read_bytes())
    os.link(first, root / "b.pem")
    reports = list(scan_paths([root, root, first, root / "b.pem"]))
    assert [report.path for report in reports] == [first]
