"""Disk errors while storing an upload are the server's storage errors, answered to the client."""

import errno

import pytest

from app.fileserver import StorageError, StorageWriter


class FullDisk:
    """A file whose writes fail as on a full disk."""

    def write(self, _data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_a_storage_error_with_the_reason():
    writer = StorageWriter(FullDisk())  # type: ignore[arg-type]
    writer.write(b"x" * 4096)  # queued; the writer thread fails on it
    with pytest.raises(StorageError, match="Server storage error: No space left on device"):
        writer.close()


def test_storage_error_is_answered_as_a_protocol_error():
    from app import protocol

    error = StorageError(OSError(errno.EACCES, "Permission denied"))
    assert isinstance(error, protocol.ProtocolError)
    assert protocol.error_reply(str(error)) == b"ERROR Server storage error: Permission denied\r\n\r\n"
