import pytest

from app import protocol
from app.protocol import ProtocolError, Request, check_filename, parse_reply, parse_request, split_header


def test_split_header_waits_for_terminator():
    assert split_header(b"GET a.bin\r\n") is None
    assert split_header(b"GET a.bin\r\n\r\n") == (b"GET a.bin", b"")


def test_split_header_keeps_payload_that_came_with_the_header():
    assert split_header(b"UPLOAD a 8\r\n\r\nQUJD") == (b"UPLOAD a 8", b"QUJD")


def test_header_limit_is_8192_bytes():
    assert split_header(b"G" * 8192 + b"\r\n\r\n") == (b"G" * 8192, b"")
    with pytest.raises(ProtocolError, match="Header too large"):
        split_header(b"G" * 8193 + b"\r\n\r\n")
    with pytest.raises(ProtocolError, match="Header too large"):
        split_header(b"G" * 9000)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"UPLOAD file.bin 12", Request("UPLOAD", "file.bin", 12)),
        (b"upload file.bin 12", Request("UPLOAD", "file.bin", 12)),
        (b"  GET\tfile.bin  ", Request("GET", "file.bin")),
        (b"UPLOAD F.BIN 4 " + b"AB" * 32, Request("UPLOAD", "F.BIN", 4, "ab" * 32)),
    ],
)
def test_parse_request(header, expected):
    assert parse_request(header) == expected


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (b"", "Empty request"),
        (b"LIST", "Unknown command"),
        (b"UPLOAD a.bin", "Usage: UPLOAD"),
        (b"UPLOAD a.bin twelve", "Invalid size format"),
        (b"UPLOAD a.bin -5", "Invalid size format"),
        (b"UPLOAD a.bin 4 nothex", "Invalid checksum format"),
        (b"GET", "Usage: GET"),
        (b"GET ../etc/passwd", "Invalid filename"),
    ],
)
def test_parse_request_errors(header, message):
    with pytest.raises(ProtocolError, match=message):
        parse_request(header)


@pytest.mark.parametrize(
    "name",
    ["", ".", "..", "../x", "a/b", "/etc/passwd", "a\\b", ".hidden", "a\x00b", "a\nb", "x" * 256, b"\xff\xfe"],
)
def test_unsafe_filenames_are_refused(name):
    with pytest.raises(ProtocolError, match="Invalid filename"):
        check_filename(name)


@pytest.mark.parametrize("name", ["file.bin", "Foto Kampus.JPG", "données-2024.txt", "a..b", "x" * 255])
def test_safe_filenames_keep_their_case(name):
    assert check_filename(name) == name


def test_replies_match_the_original_dialect_byte_for_byte():
    assert protocol.READY == b"OK Ready to receive\r\n\r\n"
    assert protocol.UPLOAD_COMPLETE == b"OK Upload complete\r\n\r\n"
    assert protocol.size_reply(42) == b"OK 42\r\n\r\n"
    assert protocol.error_reply("File not found") == b"ERROR File not found\r\n\r\n"


def test_parse_reply():
    assert parse_reply(b"OK 42") == (True, "42")
    assert parse_reply(b"ERROR File not found") == (False, "File not found")
    with pytest.raises(ProtocolError):
        parse_reply(b"HELLO")


def test_client_headers_round_trip_through_the_parser():
    header, rest = split_header(protocol.upload_header("a.bin", 8, "0" * 64) + b"xx")
    assert parse_request(header) == Request("UPLOAD", "a.bin", 8, "0" * 64)
    assert rest == b"xx"
    assert parse_request(split_header(protocol.get_header("a.bin"))[0]) == Request("GET", "a.bin")


@pytest.mark.parametrize(("n", "chars"), [(0, 0), (1, 4), (2, 4), (3, 4), (4, 8), (10 * 2**20, 13981016)])
def test_base64_length(n, chars):
    assert protocol.base64_length(n) == chars


def test_absurd_upload_size_is_a_protocol_error():
    with pytest.raises(ProtocolError, match="Invalid size format"):
        parse_request(b"UPLOAD a.bin " + b"9" * 5000)
    assert parse_request(b"UPLOAD a.bin " + b"9" * 15).size == 10**15 - 1
