import hashlib
import struct
import zlib

import pytest

from app import udp_framing as uf
from app.sample_image import HEIGHT, TARGET_SIZE, WIDTH, sample_png, stored_zlib

DATA = bytes(range(256)) * 4 + b"tail"  # 1028 bytes
SHA = hashlib.sha256(DATA).hexdigest()


def frames(data=DATA, payload=100, transfer_id=7):
    return [uf.parse_frame(d) for d in uf.build_datagrams(data, payload, "framed", transfer_id)]


def tally_of(order, data=DATA, payload=100, end=True):
    pieces = frames(data, payload)
    tally = uf.FramedTally(7)
    for index in order:
        f = pieces[index]
        tally.add_data(f.seq, f.total, f.body)
    if end:
        e = uf.parse_frame(uf.end_frame(7, len(pieces), len(data), hashlib.sha256(data).hexdigest()))
        tally.add_end(e.total, e.body)
    return tally


def test_header_layout_and_limits():
    assert uf.HEADER_SIZE == 16
    assert uf.MAX_FRAMED_PAYLOAD == 65_491 and uf.max_payload("raw") == 65_507
    datagram = uf.data_frame(0x01020304, 5, 9, b"xy")
    assert datagram[:4] == b"PJ\x01\x01"
    assert struct.unpack("!III", datagram[4:16]) == (0x01020304, 5, 9)
    assert datagram[16:] == b"xy"


def test_count_and_split():
    assert uf.count_datagrams(12_371, 1) == 12_371
    assert uf.count_datagrams(12_371, 1024) == 13
    assert uf.count_datagrams(0, 512) == 0
    assert b"".join(uf.split(DATA, 7)) == DATA and len(uf.split(DATA, 7)) == 147
    with pytest.raises(ValueError):
        uf.split(DATA, 0)


def test_raw_datagrams_are_bare_bytes_like_the_original():
    assert uf.build_datagrams(b"abc", 1, "raw") == [b"a", b"b", b"c"]


def test_frames_round_trip():
    parsed = frames()
    assert [f.seq for f in parsed] == list(range(11))
    assert {f.total for f in parsed} == {11} and {f.transfer_id for f in parsed} == {7}
    assert b"".join(f.body for f in parsed) == DATA
    end = uf.parse_frame(uf.end_frame(7, 11, len(DATA), SHA))
    assert end.kind == uf.KIND_END and uf.parse_end_body(end.body) == (len(DATA), SHA)


@pytest.mark.parametrize(
    ("datagram", "reason"),
    [
        (b"PJ\x01", "shorter"),
        (b"XX" + uf.data_frame(1, 0, 1, b"a")[2:], "magic"),
        (uf.data_frame(1, 0, 1, b"a")[:3] + b"\x09" + uf.data_frame(1, 0, 1, b"a")[4:], "kind"),
        (uf.data_frame(1, 5, 5, b"a"), "not below"),
        (uf.data_frame(1, 0, uf.MAX_DATAGRAMS + 1, b"a"), "more than"),
        (uf.end_frame(1, 3, 10, SHA)[:-1], "end marker"),
    ],
)
def test_bad_frames_are_refused_with_a_reason(datagram, reason):
    with pytest.raises(uf.FramingError, match=reason):
        uf.parse_frame(datagram)


def test_in_order_transfer_is_intact():
    verdict = tally_of(range(11)).verdict()
    assert verdict.status == "ok" and verdict.intact is True
    assert (verdict.lost, verdict.duplicates, verdict.out_of_order) == (0, 0, 0)
    assert verdict.assembled == DATA and verdict.datagrams == 11 and verdict.bytes == len(DATA)


def test_loss_duplicates_and_reordering_are_counted_separately():
    tally = tally_of([0, 1, 3, 2, 2, 5, 4, 6, 7, 8, 9])  # 10 missing, 2 twice, 2 and 4 late
    verdict = tally.verdict()
    assert (verdict.lost, verdict.duplicates, verdict.out_of_order) == (1, 1, 2)
    assert verdict.datagrams == 11 and verdict.unique == 10
    assert verdict.status == "incomplete" and verdict.intact is False
    assert not tally.complete


def test_reordered_but_complete_is_intact():
    verdict = tally_of([10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]).verdict()
    assert verdict.intact and verdict.out_of_order == 10 and verdict.lost == 0


def test_without_end_marker_the_total_still_gives_the_loss():
    tally = tally_of([0, 1, 2], end=False)
    verdict = tally.verdict(uf.Expected(len(DATA), SHA))
    assert verdict.lost == 8 and verdict.status == "incomplete"
    assert tally_of(range(11), end=False).verdict(uf.Expected(len(DATA), SHA)).intact


def test_the_expected_file_wins_over_the_end_marker():
    other = uf.Expected(len(DATA), hashlib.sha256(b"something else").hexdigest())
    verdict = tally_of(range(11)).verdict(other)
    assert verdict.status == "mismatch" and verdict.intact is False and verdict.lost == 0


def test_nothing_received():
    verdict = uf.FramedTally(0).verdict(uf.Expected(len(DATA), SHA))
    assert verdict.status == "no-data" and verdict.intact is False and verdict.datagrams == 0


def test_empty_file_is_just_an_end_marker():
    tally = uf.FramedTally(3)
    end = uf.parse_frame(uf.end_frame(3, 0, 0, hashlib.sha256(b"").hexdigest()))
    tally.add_end(end.total, end.body)
    assert tally.complete and tally.verdict().status == "ok"


def test_a_frame_with_another_total_is_not_mixed_in():
    tally = tally_of(range(11))
    tally.add_data(0, 99, b"junk")
    assert tally.inconsistent == 1 and tally.verdict().intact


def test_raw_tally_judges_by_size_and_hash():
    expected = uf.Expected(len(DATA), SHA)
    whole = uf.RawTally(payload=100)
    for piece in uf.split(DATA, 100):
        whole.add(piece)
    assert whole.verdict(expected).status == "ok" and whole.verdict(expected).lost == 0

    short = uf.RawTally(payload=100)
    for piece in uf.split(DATA, 100)[:-2]:
        short.add(piece)
    verdict = short.verdict(expected)
    assert verdict.status == "incomplete" and verdict.lost == 2 and verdict.duplicates is None

    swapped = uf.RawTally(payload=100)
    pieces = uf.split(DATA, 100)
    for piece in [pieces[1], pieces[0], *pieces[2:]]:
        swapped.add(piece)
    assert swapped.verdict(expected).status == "mismatch"  # raw mode cannot reorder: the hash tells

    assert whole.verdict(uf.Expected()).status == "unverified"


def png_chunks(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


def test_sample_image_is_a_real_png_of_the_reports_size():
    data = sample_png()
    assert len(data) == TARGET_SIZE == 12_371
    chunks = png_chunks(data)
    assert [kind for kind, _ in chunks] == [b"IHDR", b"tEXt", b"IDAT", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (width, height, depth, colour) == (WIDTH, HEIGHT, 8, 2)
    pixels = zlib.decompress(chunks[2][1])
    assert len(pixels) == HEIGHT * (1 + 3 * WIDTH)
    assert len(set(pixels)) > 50  # a picture, not a blank


def test_sample_image_is_the_same_everywhere():
    # Pinned: the host, the nodes and every student's machine must agree on it.
    assert hashlib.sha256(sample_png()).hexdigest() == (
        "9cd988e539327748e1c7235914295f27fe2743e31e43a8ee13b829b029d61775"
    )


@pytest.mark.parametrize("size", [0, 1, 65_535, 65_536, 200_000])
def test_stored_zlib_is_valid_deflate(size):
    data = bytes(i * 7 % 251 for i in range(size))
    assert zlib.decompress(stored_zlib(data)) == data
