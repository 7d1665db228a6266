"""Unpacking a node's tar stream: real tar archives, cut into arbitrary chunks."""

import io
import os
import tarfile
from pathlib import Path

import pytest

from orchestrator.lab.archive import ArchiveError, extract_stream


def make_tar(build) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        build(archive)
    return data.getvalue()


def add_file(archive: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    archive.addfile(info, io.BytesIO(content))


def add_special(archive: tarfile.TarFile, name: str, kind: bytes, linkname: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    archive.addfile(info)


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk", [1, 511, 4096, 1 << 20])
def test_folder_is_unpacked_from_chunks_of_any_size(tmp_path, chunk):
    big = bytes(range(256)) * 8192  # 2 MiB

    def build(archive):
        add_special(archive, "cell", tarfile.DIRTYPE)
        add_file(archive, "cell/clients.csv", b"a,b\n1,2\n")
        add_file(archive, "cell/downloads/001-f.bin", big)
        add_special(archive, "cell/latest", tarfile.SYMTYPE, "clients.csv")
        add_special(archive, "cell/copy.csv", tarfile.LNKTYPE, "cell/clients.csv")

    written = extract_stream(chunks(make_tar(build), chunk), tmp_path / "out")
    out = tmp_path / "out" / "cell"
    assert (out / "clients.csv").read_bytes() == b"a,b\n1,2\n"
    assert (out / "downloads" / "001-f.bin").read_bytes() == big
    assert (out / "latest").read_bytes() == (out / "copy.csv").read_bytes() == b"a,b\n1,2\n"
    assert sorted(p.name for p in written) == ["001-f.bin", "clients.csv"]
    assert not list(out.rglob(".*.part"))


@pytest.mark.parametrize(
    "build, reason",
    [
        (lambda a: add_file(a, "/etc/evil", b"x"), "unsafe name"),
        (lambda a: add_file(a, "../evil", b"x"), "unsafe name"),
        (lambda a: add_file(a, "cell/../../evil", b"x"), "unsafe name"),
        (lambda a: add_special(a, "cell/out", tarfile.SYMTYPE, "/etc/passwd"), "points outside"),
        (lambda a: add_special(a, "cell/out", tarfile.SYMTYPE, "../../evil"), "points outside"),
        (lambda a: add_special(a, "cell/hard", tarfile.LNKTYPE, "../evil"), "unsafe name"),
        (lambda a: add_special(a, "cell/dev", tarfile.CHRTYPE), "device or FIFO"),
        (lambda a: add_special(a, "cell/fifo", tarfile.FIFOTYPE), "device or FIFO"),
    ],
)
def test_hostile_members_are_refused(tmp_path, build, reason):
    with pytest.raises(ArchiveError, match=reason):
        extract_stream(chunks(make_tar(build), 700), tmp_path / "out")
    assert not (tmp_path / "evil").exists()


def test_no_member_is_written_through_an_inner_link_that_leaves(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()

    def build(archive):
        # a link that points inside the destination when made, then a file behind it
        add_special(archive, "up", tarfile.SYMTYPE, ".")
        add_file(archive, "up/ok.txt", b"fine")

    extract_stream(chunks(make_tar(build), 512), tmp_path / "out")
    assert (tmp_path / "out" / "ok.txt").read_bytes() == b"fine"
    (tmp_path / "out2").mkdir()
    (tmp_path / "out2" / "away").symlink_to(outside)  # a link already in the destination
    with pytest.raises(ArchiveError, match="outside"):
        extract_stream(chunks(make_tar(lambda a: add_file(a, "away/evil", b"x")), 512), tmp_path / "out2")
    assert not (outside / "evil").exists()


def test_truncated_stream_leaves_no_file_under_its_real_name(tmp_path):
    data = make_tar(lambda a: add_file(a, "cell/big.bin", b"z" * 100_000))
    with pytest.raises(tarfile.TarError):
        extract_stream(chunks(data[:50_000], 4096), tmp_path / "out")
    assert not (tmp_path / "out" / "cell" / "big.bin").exists()


def test_memory_does_not_hold_the_whole_stream(tmp_path):
    """The reader pulls chunks as the files are written, not all at once."""
    pulled: list[int] = []
    data = make_tar(lambda a: [add_file(a, f"f{i}", b"y" * 300_000) for i in range(4)])

    def stream():
        for index, piece in enumerate(chunks(data, 64 * 1024)):
            pulled.append(index)
            if (Path(tmp_path / "out" / "f0")).exists():
                return_early.append(index)
            yield piece

    return_early: list[int] = []
    extract_stream(stream(), tmp_path / "out")
    assert return_early and return_early[0] < len(pulled) - 1  # f0 was on disk before the stream ended


def test_unpacked_files_belong_to_the_host_user_without_special_modes(tmp_path):
    def build(archive):
        info = tarfile.TarInfo("cell/clients.csv")
        info.size, info.uid, info.mode = 3, 10001, 0o4777  # the nodes' user id, setuid
        archive.addfile(info, io.BytesIO(b"xxx"))

    extract_stream([make_tar(build)], tmp_path)
    stored = tmp_path / "cell" / "clients.csv"
    assert stored.read_bytes() == b"xxx"
    assert stored.stat().st_uid == os.getuid()
    assert stored.stat().st_mode & 0o7000 == 0


def test_links_that_leave_through_earlier_links_are_refused(tmp_path):
    """`a -> .`, `b -> .`, then `a/b/l -> ../../secret`: inside by its name, outside on disk."""
    secret = tmp_path / "secret"
    secret.write_text("host file")

    def build(archive):
        add_special(archive, "a", tarfile.SYMTYPE, ".")
        add_special(archive, "b", tarfile.SYMTYPE, ".")
        add_special(archive, "a/b/l", tarfile.SYMTYPE, "../../secret")
        add_special(archive, "h", tarfile.LNKTYPE, "l")

    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match="points outside"):
        extract_stream([make_tar(build)], dest)
    assert not (dest / "l").exists() and not (dest / "h").exists()


def test_a_hard_link_to_a_symlink_is_refused(tmp_path):
    def build(archive):
        add_special(archive, "inner", tarfile.SYMTYPE, "x")
        add_special(archive, "h", tarfile.LNKTYPE, "inner")

    with pytest.raises(ArchiveError, match="must name a file"):
        extract_stream([make_tar(build)], tmp_path / "out")
