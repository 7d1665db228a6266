"""Deterministic test files, generated once and cached.

Every node that asks for "a 10MiB file" gets the very same bytes, so the
server's download source, the client's upload source and the expected
SHA-256 all agree without copying files between nodes. The content is
SHAKE-256 output keyed by the size: incompressible like the course's
``os.urandom`` files, but reproducible on any machine and Python version.

    python -m app.genfile --size 10MiB --dir /data/files
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from app.contract import generated_name
from app.sizes import parse_size

BLOCK = 1 << 20  # 1 MiB of generator output at a time keeps memory flat


def file_name(size: int) -> str:
    """The cached file's name for ``size`` bytes, e.g. ``file_10MiB.bin`` (the rule is the contract's)."""
    return generated_name(size)


def ensure_file(directory: str, size: int, verify: bool = False) -> tuple[str, str]:
    """Create (if needed) the test file of ``size`` bytes; return (path, sha256).

    The generator's digest is kept beside the file in a hidden
    ``.<name>.sha256`` (hidden, so a file server serving this folder neither
    lists nor serves it). A file of the right size is trusted, or with
    ``verify`` hashed again (where an upload may have replaced it); a torn,
    missing or different file is generated again. The file appears under
    its final name only once complete.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, file_name(size))
    digest_path = os.path.join(directory, f".{file_name(size)}.sha256")
    try:
        if os.path.getsize(path) == size:
            with open(digest_path, encoding="ascii") as f:
                digest = f.read().strip()
            if len(digest) == 64 and (not verify or sha256_of(path) == digest):
                return path, digest
    except OSError:
        pass
    hasher = hashlib.sha256()
    with _replacing(path) as out:
        for index, offset in enumerate(range(0, size, BLOCK)):
            block = _block(size, index, min(BLOCK, size - offset))
            hasher.update(block)
            out.write(block)
    digest = hasher.hexdigest()
    with _replacing(digest_path) as out:
        out.write(digest.encode("ascii") + b"\n")
    return path, digest


def ensure_base64(path: str) -> str:
    """Create (if needed) ``<path>.b64``, the base64 text of a generated file; return its path.

    The stress client sends this copy with ``sendfile()`` so that, in a test
    of the server, the clients' own encoding does not use the CPU the server
    needs. It is written in pieces of a multiple of 3 bytes, so it is one
    valid base64 stream, and appears under its final name only once complete.
    """
    encoded_path = path + ".b64"
    expected = 4 * ((os.path.getsize(path) + 2) // 3)
    try:
        if os.path.getsize(encoded_path) == expected:
            return encoded_path
    except OSError:
        pass
    with open(path, "rb") as source, _replacing(encoded_path) as out:
        while block := source.read(3 * BLOCK):
            out.write(binascii.b2a_base64(block, newline=False))
    return encoded_path


@contextmanager
def _replacing(path: str) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file beside it, renamed over it only when complete.

    The temporary name is unique (``mkstemp``), not ``<path>.<pid>.tmp``:
    the containers share this folder, and two of them can run a process
    with the same pid. It is hidden, so a file server on this folder never
    lists it; it is removed if writing fails.
    """
    directory, name = os.path.split(path)
    fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory or ".")
    try:
        os.fchmod(fd, 0o644)  # mkstemp() creates 0600; these files are for every node to read
        with open(fd, "wb") as out:
            yield out
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def _block(size: int, index: int, length: int) -> bytes:
    return hashlib.shake_256(f"progjar-lab:{size}:{index}".encode()).digest(length)


def sha256_of(path: str) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            hasher.update(block)
    return hasher.hexdigest()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.genfile", description=__doc__.split("\n")[0])
    parser.add_argument("--size", required=True, action="append", help="e.g. 10MiB; repeatable")
    parser.add_argument("--dir", default="files", help="folder for the files (default: ./files)")
    parser.add_argument("--verify", action="store_true", help="hash an existing file again before trusting it")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        sizes = [parse_size(s) for s in args.size]
    except ValueError as exc:
        parser.error(str(exc))
    for size in sizes:
        path, digest = ensure_file(args.dir, size, verify=args.verify)
        print(f"{digest}  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
