"""Certificates on disk: walk the paths an operator names and say what each certificate file holds.

A scan is pointed at /etc, a home directory or a whole application tree, often as a privileged
user over directories others can write, so it must stay quick and safe on anything (CLM-07):
- directories are walked with an explicit stack (no recursion limit) and each is entered once,
  by device and inode, so a symlink cycle cannot loop it;
- a symlink is followed only when its target resolves inside the root it was found under: a
  link to /etc from a scanned project is reported, not followed. The check is made again on
  what was actually opened (the descriptor's path in /proc/self/fd, where there is one), so a
  link swapped in between the check and the open cannot lead the scan out either;
- only regular files are opened (a device or FIFO is never opened, and an open descriptor is
  re-checked, non-blocking), and their size is checked before a byte is read;
- the first 64 KiB decide whether a file is worth parsing (PEM armour, a keystore magic, a DER
  SEQUENCE spanning the file), or a certificate extension does: a source tree costs one read
  per file, and files that look like nothing are not reported at all.
Files that looked like a container but did not parse are reported with the reason, as are
files that could not be examined (too large, unreadable, a symlink out of the root).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ca.inventory.containers import Container, NotCertificates, looks_like_certificates, read_certificates

SNIFF_BYTES = 64 * 1024
CERTIFICATE_EXTENSIONS = frozenset(
    {".pem", ".crt", ".cer", ".der", ".p7b", ".p7c", ".p12", ".pfx", ".jks", ".keystore", ".ks"}
)
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class FileReport:
    path: Path
    container: Container | None
    skipped: str | None  # why the file was not read, or why what it holds is not certificates


@dataclass(frozen=True)
class _Scan:
    """One root's walk: its limits, its boundary and what has been seen (shared across roots)."""

    root: Path
    boundary: str  # the root's real path
    passphrases: Sequence[bytes]
    max_file_bytes: int
    max_pkcs12_iterations: int
    seen: set[tuple[int, int]]

    def out_of_root(self, path: Path) -> FileReport:
        return FileReport(path, None, f"symlink out of {self.root}")

    def inside(self, real_path: str) -> bool:
        return real_path == self.boundary or real_path.startswith(self.boundary.rstrip(os.sep) + os.sep)

    def opened_inside(self, descriptor: int, path: Path) -> bool:
        """Whether what ``descriptor`` refers to lies inside the root (by /proc where it exists)."""
        try:
            return self.inside(os.readlink(f"/proc/self/fd/{descriptor}"))
        except OSError:
            return self.inside(os.path.realpath(path))


def scan_paths(
    paths: Sequence[Path],
    *,
    passphrases: Sequence[bytes] = (),
    max_file_bytes: int = 8 * 1024 * 1024,
    max_pkcs12_iterations: int = 1_000_000,
) -> Iterator[FileReport]:
    """A report for each certificate-looking file under ``paths`` (files or directories): a
    directory's files in name order, then its subdirectories the same way; a file reached twice
    (hard or symbolic link) is reported once.
    A file named in ``paths`` is reported whatever it holds."""
    seen: set[tuple[int, int]] = set()
    for root in map(Path, paths):
        scan = _Scan(root, os.path.realpath(root), passphrases, max_file_bytes, max_pkcs12_iterations, seen)
        try:
            info = root.stat()
        except OSError as exc:
            yield FileReport(root, None, _os_reason(exc))
            continue
        if stat.S_ISDIR(info.st_mode):
            yield from _walk(scan)
        else:
            yield from _examine(scan, root, info, explicit=True)


def _walk(scan: _Scan) -> Iterator[FileReport]:
    stack = [scan.root]
    while stack:
        directory = stack.pop()
        try:
            entries = _list(scan, directory)
        except OSError as exc:
            yield FileReport(directory, None, _os_reason(exc))
            continue
        if entries is None:
            yield scan.out_of_root(directory)
            continue
        subdirectories: list[Path] = []
        for name, is_symlink, info in entries:
            path = directory / name
            if is_symlink and not scan.inside(os.path.realpath(path)):
                yield scan.out_of_root(path)
            elif isinstance(info, OSError):
                yield FileReport(path, None, _os_reason(info))
            elif stat.S_ISDIR(info.st_mode):
                subdirectories.append(path)
            elif stat.S_ISREG(info.st_mode):
                yield from _examine(scan, path, info, explicit=False)
        stack.extend(reversed(subdirectories))


_Entry = tuple[str, bool, os.stat_result | OSError]  # name, is a symlink, what it leads to


def _list(scan: _Scan, directory: Path) -> list[_Entry] | None:
    """The directory's entries by name, each stat()ed through its symlink if any, from the one
    descriptor checked to be inside the root; [] when already walked, None when outside."""
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not scan.opened_inside(descriptor, directory):
            return None
        opened = os.fstat(descriptor)
        if (opened.st_dev, opened.st_ino) in scan.seen:
            return []
        scan.seen.add((opened.st_dev, opened.st_ino))
        with os.scandir(descriptor) as listing:
            return [(entry.name, entry.is_symlink(), _stat(entry)) for entry in sorted(listing, key=_name)]
    finally:
        os.close(descriptor)


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _stat(entry: os.DirEntry[str]) -> os.stat_result | OSError:
    try:
        return entry.stat()
    except OSError as exc:
        return exc


def _examine(scan: _Scan, path: Path, info: os.stat_result, *, explicit: bool) -> Iterator[FileReport]:
    """The report for one file, or nothing for a file that is not a container (or already seen)."""
    if not stat.S_ISREG(info.st_mode):
        if explicit:
            yield FileReport(path, None, "not a regular file")
        return
    if info.st_size > scan.max_file_bytes:
        if (info.st_dev, info.st_ino) not in scan.seen:
            scan.seen.add((info.st_dev, info.st_ino))
            yield FileReport(path, None, f"larger than {_size(scan.max_file_bytes)}")
        return
    named = explicit or path.suffix.lower() in CERTIFICATE_EXTENSIONS
    try:
        descriptor = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        yield FileReport(path, None, _os_reason(exc))
        return
    with os.fdopen(descriptor, "rb") as handle:
        opened = os.fstat(descriptor)
        if (opened.st_dev, opened.st_ino) in scan.seen:
            return
        scan.seen.add((opened.st_dev, opened.st_ino))
        if not explicit and not scan.opened_inside(descriptor, path):
            yield scan.out_of_root(path)
            return
        try:
            data = _read_candidate(handle, opened, scan.max_file_bytes, whatever_it_holds=named)
        except OSError as exc:
            yield FileReport(path, None, _os_reason(exc))
            return
        except ValueError as exc:
            yield FileReport(path, None, str(exc))
            return
    if data is None:
        return
    try:
        container = read_certificates(
            data, passphrases=scan.passphrases, max_pkcs12_iterations=scan.max_pkcs12_iterations
        )
    except NotCertificates as exc:
        yield FileReport(path, None, str(exc))
        return
    yield FileReport(path, container, None)


def _read_candidate(
    handle: BinaryIO, opened: os.stat_result, max_bytes: int, *, whatever_it_holds: bool
) -> bytes | None:
    """The file's bytes when its head sniffs as a container or ``whatever_it_holds``, else None
    (only the head read). Raises ValueError when the open file is not what stat() said."""
    if not stat.S_ISREG(opened.st_mode):
        raise ValueError("not a regular file")
    if opened.st_size > max_bytes:
        raise ValueError(f"larger than {_size(max_bytes)}")
    head = handle.read(SNIFF_BYTES)
    if not whatever_it_holds and not looks_like_certificates(head, opened.st_size):
        return None
    data = head + handle.read(max_bytes + 1 - len(head))
    if len(data) > max_bytes:
        raise ValueError(f"larger than {_size(max_bytes)}")
    return data


def _size(count: int) -> str:
    mib = 1024 * 1024
    return f"{count // mib} MiB" if count % mib == 0 else f"{count} bytes"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
