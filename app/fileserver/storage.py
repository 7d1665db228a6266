"""Where the server keeps its files: one folder, and uploads that appear only when complete.

An upload is written to a hidden temporary file beside its final name and
renamed over it in one atomic step once it is whole and intact, so nobody
ever sees a partial file. Only regular files directly in the folder are
served: a symbolic link is never followed.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from app import protocol
from app.background_writer import BackgroundWriter

TEMP_PREFIX = ".upload-"  # hidden: check_filename() refuses names starting with "."


class StorageError(protocol.ProtocolError):
    """Storing failed on the server's side (disk full, permissions): the client is told so."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(f"Server storage error: {exc.strerror or exc}")


class StorageWriter(BackgroundWriter):
    """A BackgroundWriter whose disk errors are reported as StorageError, not as network errors."""

    def write(self, piece: bytes) -> None:
        try:
            super().write(piece)
        except OSError as exc:
            raise StorageError(exc) from None

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            raise StorageError(exc) from None


# Files that are not regular files, or are symbolic links (O_NOFOLLOW), are "not found".
_NOT_FOUND_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENXIO}


class Storage:
    """The folder of stored files, with atomic replacement of uploads."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def path(self, name: str) -> str:
        # `name` has passed protocol.check_filename(): a plain name, no separators.
        return os.path.join(self.root, name)

    def new_temp(self) -> tuple[int, str]:
        """A fresh hidden file in the same folder, so os.replace() is atomic.

        Its name carries this process's id (``.upload-<pid>-<random>.part``),
        so the files of a worker process that is killed can be found and removed.
        """
        return tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".part", dir=self.root)

    @contextmanager
    def incoming(self, name: str) -> Iterator[BinaryIO]:
        """Write a new version of ``name``; it becomes visible only if the block succeeds.

        The bytes go to a hidden temporary file in the same folder, renamed
        over ``name`` in one atomic step at the end of the ``with`` block. If
        the block raises (client gone, bad data, checksum mismatch), the
        temporary file is removed and the previous version stays as it was.
        """
        try:
            fd, temp_path = self.new_temp()
        except OSError as exc:
            raise StorageError(exc) from None
        try:
            with open(fd, "wb", buffering=0) as out:
                yield out  # type: ignore[misc]
                try:
                    # Once per upload, not per chunk: the bytes reach the disk before the
                    # rename does, so a crash never replaces the previous version with an
                    # empty or partial file.
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise StorageError(exc) from None
            try:
                os.chmod(temp_path, 0o644)  # mkstemp() creates 0600; stored files are for everyone to read
                os.replace(temp_path, self.path(name))  # replaces a symbolic link itself, never its target
            except OSError as exc:
                raise StorageError(exc) from None
        except BaseException:
            os.unlink(temp_path)
            raise

    def open_file(self, name: str) -> BinaryIO:
        """Open a stored regular file for reading, or raise ProtocolError("File not found").

        A symbolic link is not followed (``O_NOFOLLOW``) and anything but a
        regular file is refused, so a GET can only read what LIST shows, never
        a file outside the folder that a link points to. (``O_NONBLOCK`` keeps
        a named pipe from blocking the open; it changes nothing for a file.)
        """
        try:
            fd = os.open(self.path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in _NOT_FOUND_ERRNOS:
                raise protocol.ProtocolError("File not found") from None
            raise StorageError(exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise protocol.ProtocolError("File not found")
        # The open descriptor keeps this version of the file even if an upload
        # replaces the name meanwhile: a download is never a mix of two versions.
        return open(fd, "rb")

    def delete(self, name: str) -> None:
        """Remove a stored regular file, or raise ProtocolError."""
        path = self.path(name)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise protocol.ProtocolError("File not found")  # LIST does not show it either
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            raise protocol.ProtocolError("File not found") from None
        except PermissionError:
            raise protocol.ProtocolError("Permission denied") from None
        except OSError as exc:  # read-only or failing disk: the client is told, not left without an answer
            raise StorageError(exc) from None

    def names(self) -> list[str]:
        """The stored files' names, sorted; temporary uploads, links and unusable names left out."""
        names = []
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            names.append(protocol.check_filename(entry.name))
                    except protocol.ProtocolError:
                        pass  # a hidden temporary upload, or a name no request could ask for
        except OSError as exc:  # the folder is gone or unreadable: the client is told
            raise StorageError(exc) from None
        return sorted(names)

    def sweep_temp(self, pid: int | None = None) -> int:
        """Remove temporary uploads of process ``pid`` (None: of anyone), left when it was killed."""
        prefix = TEMP_PREFIX if pid is None else f"{TEMP_PREFIX}{pid}-"
        removed = 0
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
        return removed
