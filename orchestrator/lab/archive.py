"""Unpack a tar stream from a node safely, piece by piece (standard library only).

Docker hands a folder out of a container as a tar stream. It is read as it
arrives (``tarfile`` stream mode), so memory does not grow with what a cell
wrote, and every member is checked before anything is written: only regular
files, folders and links that stay inside the destination are allowed;
absolute names, ``..``, links pointing outside, devices and FIFOs are refused.
This is what ``extractall(filter="data")`` does, but that argument only
exists from Python 3.11.4, and the lab supports Debian 12's 3.11.2.

A file is written under a temporary name and renamed when complete, so an
interrupted copy never leaves a partial file under the real name.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath

COPY_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """The archive holds a member that must not be unpacked; the message names it."""


class ChunkReader(io.RawIOBase):
    """A read-only file over an iterable of byte chunks (Docker's archive stream)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks: Iterator[bytes] = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _inside(root: Path, path: Path) -> bool:
    return path == root or root in path.parents


def _target(root: Path, name: str) -> Path:
    """Where member ``name`` goes under ``root``; ArchiveError if it would leave it."""
    posix = PurePosixPath(name)
    if posix.is_absolute() or ".." in posix.parts or "\0" in name:
        raise ArchiveError(f"unsafe name {name!r}")
    target = root.joinpath(*posix.parts)
    # An earlier link in the archive must not lead a later member out of root.
    if not _inside(root, Path(os.path.realpath(target.parent))):
        raise ArchiveError(f"{name!r} would be written outside {root} through a link")
    return target


def extract_stream(chunks: Iterable[bytes], dest: Path) -> list[Path]:
    """Unpack the tar stream ``chunks`` into ``dest`` (created); returns the files written."""
    dest.mkdir(parents=True, exist_ok=True)
    root = Path(os.path.realpath(dest))
    written: list[Path] = []
    with tarfile.open(fileobj=io.BufferedReader(ChunkReader(chunks), COPY_CHUNK), mode="r|") as archive:
        for member in archive:
            target = _target(root, member.name)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None  # a regular file always has data
                partial = target.with_name(f".{target.name}.part")
                with partial.open("wb") as out:
                    shutil.copyfileobj(source, out, COPY_CHUNK)
                partial.replace(target)
                written.append(target)
            elif member.issym():
                # Resolved through the links already on disk: `a -> .` then `a/b/l -> ../../x`
                # looks inside by its name alone, yet lands outside.
                pointed = Path(os.path.realpath(Path(os.path.realpath(target.parent)) / member.linkname))
                if PurePosixPath(member.linkname).is_absolute() or not _inside(root, pointed):
                    raise ArchiveError(f"link {member.name!r} points outside: {member.linkname!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                target.symlink_to(member.linkname)
            elif member.islnk():
                original = _target(root, member.linkname)
                if original.is_symlink() or not original.is_file():
                    raise ArchiveError(f"hard link {member.name!r} must name a file unpacked before it")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                os.link(original, target, follow_symlinks=False)
            else:
                raise ArchiveError(f"{member.name!r} is a device or FIFO, not a file")
    return written
