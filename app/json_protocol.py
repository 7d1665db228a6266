"""The course's JSON protocol (TCP port 6666): framing and answers.

Pure functions and small state machines only: no sockets here, so every
rule is unit-tested alone. The server's side is in ``app/fileserver/json_session.py``.

The protocol (``PROTOKOL.txt`` of the course, translated)::

    LIST                      -> {"status": "OK", "data": ["a.jpg", "b.pdf"]}
    GET <name>                -> {"status": "OK", "data_namafile": "<name>", "data_file": "<base64>"}
    UPLOAD <name> <base64>    -> {"status": "OK", "data": "...", "sha256": "<hex>"}
    DELETE <name>  (or HAPUS) -> {"status": "OK", "data": "..."}
    anything that fails       -> {"status": "ERROR", "data": "<message>"}
    an unknown request        -> {"status": "ERROR", "data": "request tidak dikenali"}

Every answer is one JSON object followed by ``\\r\\n\\r\\n``. The command word
is case-insensitive; file names keep their case (the course's reference
server lower-cased the whole request, a defect) and follow the same safety
rules as the streaming dialect (``protocol.check_filename``). Words are
separated by whitespace, so a name cannot contain spaces. The ``sha256`` key
of an UPLOAD answer is this lab's extension: the digest of the bytes
stored, so a client can check the upload end to end; other clients ignore it.

Where a request ends (the rules the server applies, in this order):

1. A connection carries requests one after the other, until the client
   closes it, stays silent for the server's idle timeout, or has sent 1000
   (the server then closes it). Whitespace between requests is ignored, so
   is an empty request.
2. ``UPLOAD <name> `` (the command, the name and the blank after it) starts
   an upload: everything after it, up to ``\\r\\n\\r\\n``, is the file as
   base64, decoded and stored while it arrives. An UPLOAD must end with
   ``\\r\\n\\r\\n``: without it the server cannot tell a finished upload from
   a stalled one, so it waits until the idle timeout and stores nothing.
3. Any other request ends at ``\\r\\n\\r\\n``, or, for clients that send a
   bare command (the course's reference client sends ``LIST`` or
   ``GET name`` with no terminator at all), when the client has been quiet
   for BARE_COMMAND_QUIET seconds after sending it, or when it closes its
   side of the connection. So a bare command is answered after a short
   pause, and a terminator that arrives later on its own is ignored by rule 1.
4. A request's words (up to an UPLOAD's base64) are at most 8192 bytes.

After an error the connection stays open when the failed request was read
to its end (e.g. ``File not found``); when it was not (an over-long header,
invalid base64 in the middle of an UPLOAD, a timeout), the rest of the data
cannot be told apart from a next request, so the server answers and closes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from json.decoder import JSONDecodeError, scanstring

from app.protocol import MAX_HEADER_BYTES, TERMINATOR, ProtocolError, check_filename

BARE_COMMAND_QUIET = 0.25  # seconds of silence after which a bare command is complete
MAX_KEPT_ANSWER = 1 << 16  # bytes of an answer a client keeps, besides the streamed file
UNKNOWN_REQUEST = "request tidak dikenali"  # the course's message: "request not recognised"

# "UPLOAD", blanks, the name, blanks: the head of an upload; the base64 follows.
_UPLOAD_HEAD = re.compile(rb"UPLOAD[ \t]+(\S+)[ \t]+", re.IGNORECASE)
_WHITESPACE = b" \t\r\n\x0b\x0c"


# --- requests (server side) ---------------------------------------------------


@dataclass(frozen=True)
class JsonRequest:
    """One parsed request other than UPLOAD (which is streamed, see UploadHead)."""

    command: str  # "LIST", "GET" or "DELETE" (HAPUS is the same request)
    filename: str | None = None


@dataclass(frozen=True)
class Complete:
    """A whole request is in the buffer: ``buffer[:rest]`` is used up, ``text`` is its words."""

    text: bytes
    rest: int


@dataclass(frozen=True)
class UploadHead:
    """An UPLOAD begins: its base64 starts at ``buffer[body]``."""

    filename: bytes
    body: int


@dataclass(frozen=True)
class Incomplete:
    """More bytes are needed. ``bare``: the words so far may be a whole bare command."""

    bare: bool


def frame_request(buffer: bytes) -> Complete | UploadHead | Incomplete:
    """Find where the next request in ``buffer`` ends (rules 1-4 of the module docstring).

    Raises ProtocolError("Header too large") once the words of a request
    exceed MAX_HEADER_BYTES without an end.
    """
    stripped = buffer.lstrip(_WHITESPACE)
    start = len(buffer) - len(stripped)
    upload = _UPLOAD_HEAD.match(buffer, start, MAX_HEADER_BYTES)
    if upload:
        return UploadHead(upload.group(1), upload.end())
    end = buffer.find(TERMINATOR, start, MAX_HEADER_BYTES + len(TERMINATOR))
    if end != -1:
        return Complete(buffer[start:end], end + len(TERMINATOR))
    if len(buffer) >= MAX_HEADER_BYTES + len(TERMINATOR):
        raise ProtocolError("Header too large")
    words = stripped.split(None, 1)
    # An UPLOAD is never complete without its terminator (rule 2).
    bare = bool(words) and words[0].upper() != b"UPLOAD"
    return Incomplete(bare)


def bare_request(buffer: bytes) -> Complete:
    """The whole buffer as one request: a bare command after its quiet period."""
    return Complete(buffer.strip(_WHITESPACE), len(buffer))


def is_blank(buffer: bytes) -> bool:
    """True when ``buffer`` holds no request at all, only whitespace."""
    return not buffer.strip(_WHITESPACE)


def parse_request(text: bytes) -> JsonRequest:
    """Parse the words of one complete request; ProtocolError for a bad one."""
    words = text.split()
    if not words:
        raise ProtocolError(UNKNOWN_REQUEST)
    command = words[0].decode("ascii", "replace").upper()
    if command == "LIST":
        if len(words) != 1:
            raise ProtocolError("Usage: LIST")
        return JsonRequest("LIST")
    if command in ("GET", "DELETE", "HAPUS"):
        if len(words) != 2:
            raise ProtocolError(f"Usage: {command} <filename>")
        return JsonRequest("GET" if command == "GET" else "DELETE", check_filename(words[1]))
    if command == "UPLOAD":
        # A well-formed UPLOAD never gets here: frame_request() streams it.
        raise ProtocolError("Usage: UPLOAD <filename> <base64>")
    raise ProtocolError(UNKNOWN_REQUEST)


def command_of(text: bytes) -> str:
    """The command word of a request for the outcome log: ``JSON-GET``, or ``JSON`` if unknown."""
    words = text.split(None, 1)
    command = words[0].decode("ascii", "replace").upper() if words else ""
    command = "DELETE" if command == "HAPUS" else command
    return f"JSON-{command}" if command in ("LIST", "GET", "DELETE", "UPLOAD") else "JSON"


class TerminatorScanner:
    """Find TERMINATOR in a stream that arrives in pieces, even split across two.

    An upload's base64 never contains ``\\r`` or ``\\n``, so at most the last
    3 bytes of a piece (a possible beginning of the terminator) are held back
    until the next piece shows whether they are one: a terminator that
    arrives one byte at a time is found as surely as one in a single piece.
    """

    def __init__(self) -> None:
        self._held = b""  # "\r", "\r\n" or "\r\n\r" at the end of the previous piece

    def feed(self, data: bytes | bytearray, end: int) -> tuple[list[bytes | memoryview], int | None]:
        """Scan ``data[:end]``: returns (body pieces, index just after the terminator or None).

        The pieces are the bytes before the terminator (views into ``data``,
        no copies: this runs once per received MiB). None means that the
        terminator has not come yet and the whole piece was body.
        """
        pieces: list[bytes | memoryview] = []
        if self._held:
            held, self._held = self._held, b""
            if end < len(TERMINATOR) - 1:
                # A tiny piece may still not complete the terminator: scan both together.
                joint = held + bytes(data[:end])
                pieces, after = self.feed(joint, len(joint))
                return pieces, None if after is None else after - len(held)
            joint = held + bytes(data[: len(TERMINATOR) - 1])
            at = joint.find(TERMINATOR)
            if at != -1:  # the terminator began in the previous piece
                return ([held[:at]] if at else []), at + len(TERMINATOR) - len(held)
            pieces.append(held)  # not a terminator after all: body bytes (the decoder will judge them)
        at = data.find(TERMINATOR, 0, end)
        if at != -1:
            if at:
                pieces.append(memoryview(data)[:at])
            return pieces, at + len(TERMINATOR)
        keep = _partial_terminator(data, end)
        if end - keep:
            pieces.append(memoryview(data)[: end - keep])
        self._held = bytes(data[end - keep : end])
        return pieces, None


def _partial_terminator(data: bytes | bytearray, end: int) -> int:
    """How many bytes at the end of ``data[:end]`` could begin a terminator (0-3)."""
    for length in range(len(TERMINATOR) - 1, 0, -1):
        if end >= length and data[end - length : end] == TERMINATOR[:length]:
            return length
    return 0


# --- answers (server side) -----------------------------------------------------


def answer(fields: dict[str, object]) -> bytes:
    """One framed answer. ``json.dumps`` defaults give the course's ``{"status": "OK", ...}``."""
    return json.dumps(fields).encode("ascii") + TERMINATOR


def ok_answer(data: object, **extra: str) -> bytes:
    return answer({"status": "OK", "data": data, **extra})


def error_answer(message: str) -> bytes:
    return answer({"status": "ERROR", "data": message})


def get_answer_prefix(name: str) -> bytes:
    """The bytes of a GET answer before the file's base64; GET_ANSWER_SUFFIX comes after it.

    prefix + base64 + suffix is exactly ``answer({"status": "OK", "data_namafile": name,
    "data_file": base64})``, so the file can be sent in pieces without holding it.
    """
    head = json.dumps({"status": "OK", "data_namafile": name, "data_file": ""})
    return head[: -len('"}')].encode("ascii")


GET_ANSWER_SUFFIX = b'"}' + TERMINATOR


# --- requests and answers (client side) ----------------------------------------


def request(*words: str) -> bytes:
    """A request as most clients send it: the words, then the terminator."""
    return " ".join(words).encode("utf-8") + TERMINATOR


def upload_prefix(name: str) -> bytes:
    """What an UPLOAD sends before the file's base64 (and TERMINATOR after it)."""
    return f"UPLOAD {name} ".encode()


class AnswerError(ValueError):
    """The server's answer is not a well-formed JSON answer."""


class AnswerParser:
    """Read one JSON answer from pieces of any size, in bounded memory.

    A GET answer carries the whole file as a base64 string. The value of
    ``stream_key`` (a JSON string) is therefore not kept: ``feed()`` returns
    its characters as they arrive. Everything else (at most MAX_KEPT_ANSWER
    bytes) is kept and, once the terminator has come, parsed with the real
    ``json`` module, with the streamed value replaced by ``""``. The keys may
    come in any order.

    >>> parser = AnswerParser("data_file")
    >>> bytes(parser.feed(b'{"status": "OK", "data_file": "QU')), bytes(parser.feed(b'JD"}\\r\\n\\r\\n'))
    (b'QU', b'JD')
    >>> parser.answer
    {'status': 'OK', 'data_file': ''}
    """

    def __init__(self, stream_key: str | None = None, max_kept: int = MAX_KEPT_ANSWER) -> None:
        self._key = stream_key
        self._max = max_kept
        self._head = b""  # the answer up to the streamed value's opening quote
        self._tail = b""  # the answer after the streamed value's closing quote
        self._state = "head"  # head -> value -> tail -> done
        self._escape = False  # the previous piece of the value ended with a backslash
        self.answer: dict[str, object] | None = None
        self.rest = b""  # bytes after the terminator (the start of a next answer)

    @property
    def done(self) -> bool:
        return self.answer is not None

    def feed(self, data: bytes) -> bytes | memoryview:
        """Take the next piece of the answer; return the streamed value's characters in it."""
        if self._state == "head":
            self._head += data
            opening = self._find_stream_start()
            if opening is None:
                self._finish_if_complete(self._head)
                return b""
            data, self._head = self._head[opening:], self._head[: opening - 1]
            self._state = "value"
            return self._value(data)
        if self._state == "value":
            return self._value(data)
        if self._state == "tail":
            self._tail += data
            self._finish_if_complete(self._tail)
            return b""
        raise AnswerError("data after the end of the answer")

    def _value(self, data: bytes) -> bytes | memoryview:
        """Characters of the streamed string; at its closing quote, switch to the tail."""
        closing = data.find(b'"')
        end = len(data) if closing == -1 else closing
        # Hot path (once per received MiB): base64 has no backslash, so the
        # characters are handed out as a view, without a copy.
        if self._escape or data.find(b"\\", 0, end) != -1:
            piece: bytes | memoryview = self._unescape(data[:end], closed=closing != -1)
        else:
            piece = memoryview(data)[:end]
        if closing != -1:
            self._state = "tail"
            self._tail = data[closing + 1 :]
            self._finish_if_complete(self._tail)
        return piece

    def _unescape(self, text: bytes, closed: bool) -> bytes:
        """The rare slow path: JSON may escape "/" as "\\/"; base64 needs no other escape."""
        if self._escape:
            text = b"\\" + text
            self._escape = False
        trailing = len(text) - len(text.rstrip(b"\\"))
        if trailing % 2:
            if closed:
                raise AnswerError(f"unexpected escaped quote in {self._key}")
            text, self._escape = text[:-1], True  # its escaped character is in the next piece
        text = text.replace(b"\\/", b"/")
        if b"\\" in text:
            raise AnswerError(f"unexpected escape in {self._key}")
        return text

    def _finish_if_complete(self, buffer: bytes) -> None:
        """Parse the kept text once the terminator is in ``buffer``."""
        at = buffer.find(TERMINATOR)
        if at == -1:
            if len(self._head) + len(self._tail) > self._max:
                raise AnswerError(f"answer larger than {self._max} bytes")
            return
        # The kept text, with the streamed value (if any) replaced by an empty string.
        kept = buffer[:at] if self._state == "head" else self._head + b'""' + buffer[:at]
        try:
            parsed = json.loads(kept)
        except (UnicodeDecodeError, JSONDecodeError) as exc:
            raise AnswerError(f"not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise AnswerError("not a JSON object")
        self.rest = buffer[at + len(TERMINATOR) :]
        self.answer = parsed
        self._state = "done"

    def _find_stream_start(self) -> int | None:
        """Index just after the opening quote of ``stream_key``'s string value, if it has come.

        Walks the top-level keys of the object; each value other than the
        streamed one is skipped with the real JSON decoder. None when the
        text so far does not reach the streamed value (more is needed, or
        the answer has no such key: then the terminator ends it). The text
        is read as Latin-1 so that character and byte offsets are the same;
        it is only used to find positions, never for its values.
        """
        if self._key is None:
            return None
        text = self._head.decode("latin-1")
        decoder = json.JSONDecoder()
        index = _skip_blanks(text, 0)
        if text[index : index + 1] != "{":
            if index < len(text):
                raise AnswerError("the answer is not a JSON object")
            return None
        index += 1
        for _ in range(len(text)):  # bounded: every round consumes at least one character
            index = _skip_blanks(text, index)
            if text[index : index + 1] != '"':
                return None  # "}" (no such key), the end of the text so far, or bad JSON
            try:
                key, index = scanstring(text, index + 1)
            except JSONDecodeError:
                return None
            index = _skip_blanks(text, index)
            if text[index : index + 1] != ":":
                return None
            index = _skip_blanks(text, index + 1)
            if key == self._key and text[index : index + 1] == '"':
                return index + 1
            try:
                _, index = decoder.raw_decode(text, index)
            except JSONDecodeError:
                return None
            index = _skip_blanks(text, index)
            if text[index : index + 1] != ",":
                return None
            index += 1
        return None


def _skip_blanks(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    return index
