"""Certificates on disk: walk the paths an operator names and say what each certificate file holds.

A scan is pointed at /etc, a home directory or a whole application tree, so it must stay quick
and safe on anything (CLM-07):
- directories are walked with an explicit stack (no recursion limit) and each directory is
  entered once, by device and inode, so a symlink cycle cannot loop it;
- a symlink is followed only when its target resolves inside the root it was found under: a
  link to /etc from a scanned project is reported, not followed;
- size is checked with stat() before a byte is read, files are opened non-blocking and
  re-checked as regular files on the open descriptor (a FIFO swapped in cannot hang the scan);
- only the first 64 KiB decide whether a file is worth parsing (PEM armour, a keystore magic, a
  DER SEQUENCE spanning the file) or a certificate extension does: a source tree costs a read
  each, and files that look like nothing are not reported at all.
Files that looked like a container but did not parse are reported with the reason, as are
files that could not be examined (too large, unreadable, a symlink out of the root).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ca.inventory.containers import Container, NotCertificates, looks_like_certificates, read_certificates

SNIFF_BYTES = 64 * 1024
CERTIFICATE_EXTENSIONS = frozenset(
    {".pem", ".crt", ".cer", ".der", ".p7b", ".p7c", ".p12", ".pfx", ".jks", ".keystore", ".ks"}
)


@dataclass(frozen=True)
class FileReport:
    path: Path
    container: Container | None
    skipped: str | None  # why the file was not read, or why what it holds is not certificates


@dataclass(frozen=True)
class _Limits:
    passphrases: Sequence[bytes]
    max_file_bytes: int
    max_pkcs12_iterations: int


def scan_paths(
    paths: Sequence[Path],
    *,
    passphrases: Sequence[bytes] = (),
    max_file_bytes: int = 8 * 1024 * 1024,
    max_pkcs12_iterations: int = 1_000_000,
) -> Iterator[FileReport]:
    """A report for each certificate-looking file under ``paths`` (files or directories), in name
    order within each directory; a file reached twice (hard or symbolic link) is reported once."""
    limits = _Limits(passphrases, max_file_bytes, max_pkcs12_iterations)
    seen: set[tuple[int, int]] = set()
    for root in paths:
        yield from _scan_root(Path(root), limits, seen)


def _scan_root(root: Path, limits: _Limits, seen: set[tuple[int, int]]) -> Iterator[FileReport]:
    try:
        info = root.stat()
    except OSError as exc:
        yield FileReport(root, None, _os_reason(exc))
        return
    if not stat.S_ISDIR(info.st_mode):
        yield from _examine(root, info, limits, seen, explicit=True)
        return
    boundary = os.path.realpath(root)
    seen.add((info.st_dev, info.st_ino))
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            yield FileReport(directory, None, _os_reason(exc))
            continue
        subdirectories: list[Path] = []
        for entry in entries:
            path = directory / entry.name
            if entry.is_symlink() and not _inside(os.path.realpath(path), boundary):
                yield FileReport(path, None, f"symlink out of {root}")
                continue
            try:
                info = path.stat()  # through an in-root symlink: its target's
            except OSError as exc:
                yield FileReport(path, None, _os_reason(exc))
                continue
            if stat.S_ISDIR(info.st_mode):
                if (info.st_dev, info.st_ino) not in seen:
                    seen.add((info.st_dev, info.st_ino))
                    subdirectories.append(path)
            else:
                yield from _examine(path, info, limits, seen, explicit=False)
        stack.extend(reversed(subdirectories))


def _examine(
    path: Path, info: os.stat_result, limits: _Limits, seen: set[tuple[int, int]], *, explicit: bool
) -> Iterator[FileReport]:
    """The report for one file, or nothing for a file that is not a container (or already seen).
    A file named explicitly is always reported."""
    if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) in seen:
        if explicit:
            yield FileReport(path, None, "not a regular file")
        return
    seen.add((info.st_dev, info.st_ino))
    if info.st_size > limits.max_file_bytes:
        yield FileReport(path, None, f"larger than {_size(limits.max_file_bytes)}")
        return
    named = explicit or path.suffix.lower() in CERTIFICATE_EXTENSIONS
    try:
        data = _read_candidate(path, limits.max_file_bytes, whatever_it_holds=named)
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
            data, passphrases=limits.passphrases, max_pkcs12_iterations=limits.max_pkcs12_iterations
        )
    except NotCertificates as exc:
        yield FileReport(path, None, str(exc))
        return
    yield FileReport(path, container, None)


def _read_candidate(path: Path, max_bytes: int, *, whatever_it_holds: bool) -> bytes | None:
    """The file's bytes when its head sniffs as a container or ``whatever_it_holds``, else None
    (only the head read). Raises ValueError when the file is not what stat() said."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as handle:
        opened = os.fstat(handle.fileno())
        if not stat.S_ISREG(opened.st_mode):
            raise ValueError("not a regular file")
        if opened.st_size > max_bytes:
            raise ValueError(f"larger than {_size(max_bytes)}")
        head = handle.read(SNIFF_BYTES)
        if not whatever_it_holds and not looks_like_certificates(head, opened.st_size):
            return None
        rest = handle.read(max_bytes + 1 - len(head))
    data = head + rest
    if len(data) > max_bytes:
        raise ValueError(f"larger than {_size(max_bytes)}")
    return data


def _inside(target: str, boundary: str) -> bool:
    return target == boundary or target.startswith(boundary.rstrip(os.sep) + os.sep)


def _size(count: int) -> str:
    mib = 1024 * 1024
    return f"{count // mib} MiB" if count % mib == 0 else f"{count} bytes"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
