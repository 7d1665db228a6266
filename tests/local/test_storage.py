"""The server's storage folder on the real file system."""

import os

from app.fileserver import storage as storage_module
from app.fileserver.storage import Storage


def test_an_upload_reaches_the_disk_before_it_replaces_the_old_version(tmp_path, monkeypatch):
    # Spies that record the calls and do the real work: the order is what matters.
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(f"fsync {os.readlink(f'/proc/self/fd/{fd}')}")
        real_fsync(fd)

    def replace(source: str, target: str) -> None:
        calls.append(f"replace {source}")
        real_replace(source, target)

    monkeypatch.setattr(storage_module.os, "fsync", fsync)
    monkeypatch.setattr(storage_module.os, "replace", replace)
    storage = Storage(str(tmp_path))
    (tmp_path / "a.bin").write_bytes(b"old")
    with storage.incoming("a.bin") as out:
        for _ in range(3):  # several chunks, one fsync
            out.write(b"new " * 1000)
    assert (tmp_path / "a.bin").read_bytes() == b"new " * 3000
    assert len(calls) == 2, calls
    temp = calls[1].removeprefix("replace ")
    assert calls == [f"fsync {temp}", f"replace {temp}"]
