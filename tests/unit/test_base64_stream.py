import base64
import random

import pytest

from app.base64_stream import Base64Error, Base64StreamDecoder


def decode_in_pieces(encoded: bytes, sizes: list[int]) -> bytes:
    decoder = Base64StreamDecoder()
    out, offset, i = [], 0, 0
    while offset < len(encoded):
        size = sizes[i % len(sizes)]
        out.append(decoder.feed(memoryview(encoded)[offset : offset + size]))
        offset += size
        i += 1
    out.append(decoder.finish())
    return b"".join(out)


@pytest.mark.parametrize("length", [0, 1, 2, 3, 4, 5, 100, 1000])
@pytest.mark.parametrize("piece", [1, 2, 3, 4, 5, 7, 4096])
def test_any_chunking_decodes_exactly(length, piece):
    data = random.Random(length).randbytes(length)
    assert decode_in_pieces(base64.b64encode(data), [piece]) == data


def test_irregular_chunk_boundaries():
    data = random.Random(7).randbytes(100_000)
    assert decode_in_pieces(base64.b64encode(data), [1, 4099, 3, 65536, 2, 17]) == data


def test_invalid_character_is_an_error():
    with pytest.raises(Base64Error):
        decode_in_pieces(b"QUJD!!!!", [4])


def test_data_after_padding_is_an_error():
    decoder = Base64StreamDecoder()
    decoder.feed(b"QQ==")
    with pytest.raises(Base64Error):
        decoder.feed(b"QUJD")


def test_truncated_stream_is_an_error():
    decoder = Base64StreamDecoder()
    decoder.feed(b"QUJDR")
    with pytest.raises(Base64Error):
        decoder.finish()
