"""The JSON protocol's pure parts: framing, parsing, answers, the streaming answer parser."""

import base64
import json
import random

import pytest

from app import json_protocol
from app.json_protocol import (
    AnswerError,
    AnswerParser,
    Complete,
    Incomplete,
    JsonRequest,
    TerminatorScanner,
    UploadHead,
    frame_request,
    parse_request,
)
from app.protocol import ProtocolError

# --- framing -----------------------------------------------------------------


def test_a_terminated_request_is_complete_and_the_rest_is_kept():
    buffer = b"LIST\r\n\r\nGET a.jpg\r\n\r\n"
    framed = frame_request(buffer)
    assert framed == Complete(b"LIST", 8)
    assert frame_request(buffer[framed.rest :]) == Complete(b"GET a.jpg", 13)


def test_blanks_between_requests_are_skipped():
    assert frame_request(b"\r\n  \r\nLIST\r\n\r\n") == Complete(b"LIST", 14)


def test_a_bare_command_waits_for_its_quiet_period():
    assert frame_request(b"LIST") == Incomplete(bare=True)
    assert frame_request(b"GET Foto.JPG") == Incomplete(bare=True)
    assert json_protocol.bare_request(b"GET Foto.JPG\r\n") == Complete(b"GET Foto.JPG", 14)


def test_nothing_or_blanks_is_not_a_request():
    assert frame_request(b"") == Incomplete(bare=False)
    assert frame_request(b"\r\n\r\n") == Incomplete(bare=False)
    assert json_protocol.is_blank(b" \r\n\t")
    assert not json_protocol.is_blank(b" x ")


def test_an_upload_is_streamed_from_the_blank_after_its_name():
    buffer = b"upload Foto.JPG QUJD\r\n\r\n"
    framed = frame_request(buffer)
    assert framed == UploadHead(b"Foto.JPG", 16)
    assert buffer[framed.body :] == b"QUJD\r\n\r\n"
    assert frame_request(b"UPLOAD a.bin ") == UploadHead(b"a.bin", 13)


def test_an_upload_is_never_a_bare_command():
    # Without its terminator an upload cannot be told from a stalled one.
    assert frame_request(b"UPLOAD") == Incomplete(bare=False)
    assert frame_request(b"UPLOAD a.bin") == Incomplete(bare=False)
    assert frame_request(b"  upload a.bin") == Incomplete(bare=False)


def test_an_upload_without_base64_is_a_complete_bad_request():
    framed = frame_request(b"UPLOAD a.bin\r\n\r\n")
    assert framed == Complete(b"UPLOAD a.bin", 16)
    with pytest.raises(ProtocolError, match="Usage: UPLOAD"):
        parse_request(framed.text)


def test_header_limit():
    assert frame_request(b"G" * 8192 + b"\r\n\r\n") == Complete(b"G" * 8192, 8196)
    with pytest.raises(ProtocolError, match="Header too large"):
        frame_request(b"G" * 9000)
    with pytest.raises(ProtocolError, match="Header too large"):
        frame_request(b"UPLOAD " + b"n" * 9000 + b" QUJD")
    with pytest.raises(ProtocolError, match="Header too large"):
        frame_request(b" " * 9000)  # blanks count too: memory stays bounded


# --- parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"LIST", JsonRequest("LIST")),
        (b"list", JsonRequest("LIST")),
        (b"GET Foto Kampus", None),
        (b"GET Foto.JPG", JsonRequest("GET", "Foto.JPG")),
        (b"get Foto.JPG", JsonRequest("GET", "Foto.JPG")),
        (b"DELETE Foto.JPG", JsonRequest("DELETE", "Foto.JPG")),
        (b"hapus Foto.JPG", JsonRequest("DELETE", "Foto.JPG")),
    ],
)
def test_parse_request_keeps_the_case_of_names(text, expected):
    if expected is None:
        with pytest.raises(ProtocolError, match="Usage: GET"):
            parse_request(text)
    else:
        assert parse_request(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"FOO", "request tidak dikenali"),
        (b"\xff\xfe", "request tidak dikenali"),
        (b"", "request tidak dikenali"),
        (b"LIST extra", "Usage: LIST"),
        (b"GET", "Usage: GET"),
        (b"HAPUS", "Usage: HAPUS"),
        (b"GET ../../etc/passwd", "Invalid filename"),
        (b"GET /etc/passwd", "Invalid filename"),
        (b"GET a\x00b", "Invalid filename"),
        (b"GET \xff.bin", "Invalid filename: not UTF-8"),
        (b"DELETE .upload-x.part", "Invalid filename"),
    ],
)
def test_parse_request_errors(text, message):
    with pytest.raises(ProtocolError, match=message):
        parse_request(text)


def test_command_for_the_outcome_log():
    assert json_protocol.command_of(b"get a") == "JSON-GET"
    assert json_protocol.command_of(b"HAPUS a") == "JSON-DELETE"
    assert json_protocol.command_of(b"FOO") == "JSON"
    assert json_protocol.command_of(b"") == "JSON"


# --- the terminator across pieces ------------------------------------------------


def scan_in_pieces(stream: bytes, size: int) -> tuple[bytes, bytes | None]:
    """Feed ``stream`` in pieces of ``size``; return (body, bytes after the terminator)."""
    scanner = TerminatorScanner()
    body = []
    for offset in range(0, len(stream), size):
        piece = bytearray(stream[offset : offset + size])
        pieces, after = scanner.feed(piece, len(piece))
        body += [bytes(p) for p in pieces]
        if after is not None:
            return b"".join(body), bytes(piece[after:]) + stream[offset + size :]
    return b"".join(body), None


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 7, 64, 4096])
def test_terminator_found_at_any_piece_boundary(size):
    body = base64.b64encode(random.Random(size).randbytes(300))
    assert scan_in_pieces(body + b"\r\n\r\nLIST", size) == (body, b"LIST")


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_a_partial_terminator_is_handed_to_the_decoder_as_body(size):
    # "\r\n" inside base64 is not a terminator: it is invalid data, for the decoder to refuse.
    assert scan_in_pieces(b"QUJD\r\nQUJD\r\n\r", size) == (b"QUJD\r\nQUJD", None)
    assert scan_in_pieces(b"QUJD\r\n\rQUJD\r\n\r\n", size) == (b"QUJD\r\n\rQUJD", b"")


def test_without_terminator_everything_but_a_possible_start_is_body():
    scanner = TerminatorScanner()
    data = bytearray(b"QUJDQUJD\r\n")
    pieces, after = scanner.feed(data, len(data))
    assert [bytes(p) for p in pieces] == [b"QUJDQUJD"] and after is None
    pieces, after = scanner.feed(bytearray(b"\r\nnext"), 6)
    assert pieces == [] and after == 2


def test_scanner_only_looks_at_the_received_part_of_the_buffer():
    scanner = TerminatorScanner()
    buffer = bytearray(b"QUJD" + b"\r\n\r\n")  # stale bytes past `end` from an earlier recv
    pieces, after = scanner.feed(buffer, 4)
    assert [bytes(p) for p in pieces] == [b"QUJD"] and after is None


# --- answers ---------------------------------------------------------------------


def test_answers_are_the_courses_json_followed_by_a_blank_line():
    assert json_protocol.ok_answer(["a.jpg", "b.pdf"]) == b'{"status": "OK", "data": ["a.jpg", "b.pdf"]}\r\n\r\n'
    assert json_protocol.error_answer("request tidak dikenali") == (
        b'{"status": "ERROR", "data": "request tidak dikenali"}\r\n\r\n'
    )


@pytest.mark.parametrize("name", ["a.jpg", "Foto Kampus.JPG", 'we"ird\\name', "données.txt"])
def test_get_answer_in_pieces_is_exactly_the_json_answer(name):
    encoded = base64.b64encode(b"hello").decode()
    whole = json_protocol.get_answer_prefix(name) + encoded.encode() + json_protocol.GET_ANSWER_SUFFIX
    assert whole == json_protocol.answer({"status": "OK", "data_namafile": name, "data_file": encoded})
    assert json.loads(whole[:-4]) == {"status": "OK", "data_namafile": name, "data_file": encoded}


def test_client_requests():
    assert json_protocol.request("GET", "a.bin") == b"GET a.bin\r\n\r\n"
    assert json_protocol.upload_prefix("A.bin") == b"UPLOAD A.bin "


# --- the streaming answer parser --------------------------------------------------


def parse_in_pieces(answer: bytes, size: int, key: str | None = "data_file") -> tuple[bytes, AnswerParser]:
    parser = AnswerParser(key)
    streamed = []
    for offset in range(0, len(answer), size):
        streamed.append(bytes(parser.feed(answer[offset : offset + size])))
        if parser.done:
            break
    return b"".join(streamed), parser


@pytest.mark.parametrize("size", [1, 2, 3, 7, 100, 1 << 20])
def test_get_answer_streams_the_file_and_keeps_the_rest(size):
    encoded = base64.b64encode(random.Random(1).randbytes(5000))
    answer = json_protocol.get_answer_prefix("Foto.JPG") + encoded + json_protocol.GET_ANSWER_SUFFIX + b"next"
    streamed, parser = parse_in_pieces(answer, size)
    assert streamed == encoded
    assert parser.answer == {"status": "OK", "data_namafile": "Foto.JPG", "data_file": ""}
    if size > len(answer):  # one piece: what followed the terminator is kept for the next answer
        assert parser.rest == b"next"


def test_keys_in_any_order_and_escaped_slashes():
    # Other servers may put data_file first, or escape "/" as "\/" (PHP does).
    answer = b'{"data_file": "ab\\/c+/==", "status":"OK" , "n": [1, {"x": "}"}], "data_namafile": "a\\"b"}\r\n\r\n'
    for size in (1, 2, 5, 1000):
        streamed, parser = parse_in_pieces(answer, size)
        assert streamed == b"ab/c+/=="
        assert parser.answer == {"data_file": "", "status": "OK", "n": [1, {"x": "}"}], "data_namafile": 'a"b'}


def test_an_error_answer_has_no_streamed_value():
    streamed, parser = parse_in_pieces(b'{"status": "ERROR", "data": "File not found"}\r\n\r\n', 3)
    assert streamed == b""
    assert parser.answer == {"status": "ERROR", "data": "File not found"}


def test_a_name_that_looks_like_the_key_does_not_fool_the_parser():
    answer = json_protocol.get_answer_prefix('x", "data_file": "') + b"QUJD" + json_protocol.GET_ANSWER_SUFFIX
    streamed, parser = parse_in_pieces(answer, 4)
    assert streamed == b"QUJD"
    assert parser.answer["data_namafile"] == 'x", "data_file": "'


def test_without_a_streamed_key_the_whole_answer_is_parsed():
    streamed, parser = parse_in_pieces(b'{"status": "OK", "data": "a stored", "sha256": "00"}\r\n\r\n', 2, key=None)
    assert streamed == b"" and parser.answer == {"status": "OK", "data": "a stored", "sha256": "00"}


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"OK 12\r\n\r\n", "not a JSON object"),
        (b'["OK"]\r\n\r\n', "not a JSON object"),
        (b'{"status": "OK",,}\r\n\r\n', "not JSON"),
        (b'{"status": "OK", "data_file": "QU\\"JD"}\r\n\r\n', "escaped quote"),
        (b'{"status": "OK", "data_file": "QU\\nJD"}\r\n\r\n', "unexpected escape"),
    ],
)
def test_malformed_answers_are_errors(answer, message):
    with pytest.raises(AnswerError, match=message):
        parse_in_pieces(answer, 1000)


def test_memory_is_bounded_without_a_terminator():
    parser = AnswerParser("data_file", max_kept=1000)
    parser.feed(b'{"status": "OK", "data": "')
    with pytest.raises(AnswerError, match="larger than 1000"):
        for _ in range(100):
            parser.feed(b"x" * 100)
    # ... while the streamed value itself may be of any size
    parser = AnswerParser("data_file", max_kept=1000)
    parser.feed(b'{"status": "OK", "data_file": "')
    for _ in range(1000):
        assert len(parser.feed(b"QUJD" * 25)) == 100
    parser.feed(b'"}\r\n\r\n')
    assert parser.done
