"""The file server's wire protocol ("streaming dialect", TCP port 8889).

Pure functions only: no sockets here, so every rule is unit-tested alone.

One request per connection. A request header is ASCII words ended by a blank
line (``\\r\\n\\r\\n``), at most 8192 bytes, command word case-insensitive:

    UPLOAD <name> <n> [<sha256>]\\r\\n\\r\\n  then exactly n base64 characters
        -> OK Ready to receive\\r\\n\\r\\n    (right after the header)
        -> OK Upload complete\\r\\n\\r\\n     (after the last byte is stored)
    GET <name>\\r\\n\\r\\n
        -> OK <size>\\r\\n\\r\\n followed by exactly <size> raw bytes
    any failure
        -> ERROR <message>\\r\\n\\r\\n

The optional ``<sha256>`` word is this lab's extension: when present, the
server refuses to store an upload whose decoded bytes do not hash to it
(``ERROR Checksum mismatch``). Clients that send three words, like the
course's originals, are served exactly as before. An upload followed by
more than its ``n`` characters (blanks aside) has a wrong size or wrong
data, and is not stored either (``ERROR Size mismatch: more data than
declared``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TERMINATOR = b"\r\n\r\n"
MAX_HEADER_BYTES = 8192
MAX_FILENAME_BYTES = 255
MAX_SIZE_DIGITS = 15  # up to about 1 PB of base64: refuses absurd sizes before int() sees them

READY = b"OK Ready to receive" + TERMINATOR
UPLOAD_COMPLETE = b"OK Upload complete" + TERMINATOR

_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")


class ProtocolError(Exception):
    """A request the server answers with ``ERROR <message>``."""


@dataclass(frozen=True)
class Request:
    """One parsed request header."""

    command: str  # "UPLOAD" or "GET"
    filename: str
    size: int | None = None  # base64 characters that follow an UPLOAD header
    sha256: str | None = None  # expected digest of the decoded upload, lower-case hex


def error_reply(message: str) -> bytes:
    """The bytes of an ``ERROR`` answer."""
    return f"ERROR {message}".encode("ascii", "replace") + TERMINATOR


def size_reply(size: int) -> bytes:
    """The header of a ``GET`` answer, sent before the file's raw bytes."""
    return f"OK {size}".encode("ascii") + TERMINATOR


def split_header(buffer: bytes) -> tuple[bytes, bytes] | None:
    """Split ``buffer`` into (header, rest) at the first blank line.

    Returns None while the terminator has not arrived yet. Raises
    ProtocolError once the header is longer than MAX_HEADER_BYTES.
    """
    end = buffer.find(TERMINATOR, 0, MAX_HEADER_BYTES + len(TERMINATOR))
    if end == -1:
        if len(buffer) >= MAX_HEADER_BYTES + len(TERMINATOR):
            raise ProtocolError("Header too large")
        return None
    if end > MAX_HEADER_BYTES:
        raise ProtocolError("Header too large")
    return buffer[:end], buffer[end + len(TERMINATOR) :]


def check_filename(raw: bytes | str) -> str:
    """Return ``raw`` as a safe plain file name, or raise ProtocolError.

    A stored file lives directly in the server's storage folder, so a name
    must not be able to point anywhere else: no separators, no ``.``/``..``,
    no hidden names (the server's own temporary files start with a dot),
    no control characters, valid UTF-8 and at most 255 bytes.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("Invalid filename: not UTF-8") from None
    if not name:
        raise ProtocolError("Invalid filename: empty")
    if len(raw) > MAX_FILENAME_BYTES:
        raise ProtocolError("Invalid filename: too long")
    if "/" in name or "\\" in name:
        raise ProtocolError("Invalid filename: path separators are not allowed")
    if name.startswith("."):
        raise ProtocolError("Invalid filename: must not start with a dot")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ProtocolError("Invalid filename: control characters are not allowed")
    return name


def parse_request(header: bytes) -> Request:
    """Parse one request header (without its terminator) into a Request."""
    words = header.split()
    if not words:
        raise ProtocolError("Empty request")
    command = words[0].decode("ascii", "replace").upper()
    if command == "UPLOAD":
        if len(words) not in (3, 4):
            raise ProtocolError("Usage: UPLOAD <filename> <base64 length> [sha256]")
        name = check_filename(words[1])
        size_word = words[2].decode("ascii", "replace")
        if not size_word.isdigit() or len(size_word) > MAX_SIZE_DIGITS:
            raise ProtocolError("Invalid size format")
        digest = None
        if len(words) == 4:
            digest = words[3].decode("ascii", "replace")
            if not _SHA256_RE.match(digest):
                raise ProtocolError("Invalid checksum format")
            digest = digest.lower()
        return Request("UPLOAD", name, int(size_word), digest)
    if command == "GET":
        if len(words) != 2:
            raise ProtocolError("Usage: GET <filename>")
        return Request("GET", check_filename(words[1]))
    raise ProtocolError("Unknown command")


def upload_header(name: str, b64_length: int, sha256: str | None = None) -> bytes:
    """The header a client sends before ``b64_length`` base64 characters."""
    words = ["UPLOAD", name, str(b64_length)] + ([sha256] if sha256 else [])
    return " ".join(words).encode("utf-8") + TERMINATOR


def get_header(name: str) -> bytes:
    """The header of a download request."""
    return f"GET {name}".encode() + TERMINATOR


def parse_reply(header: bytes) -> tuple[bool, str]:
    """Split a server answer into (ok, text after the status word)."""
    text = header.decode("utf-8", "replace").strip()
    status, _, rest = text.partition(" ")
    if status == "OK":
        return True, rest
    if status == "ERROR":
        return False, rest
    raise ProtocolError(f"Unexpected reply: {text[:80]!r}")


def base64_length(n: int) -> int:
    """Characters of padded base64 for ``n`` bytes: 4 for every started 3."""
    return 4 * ((n + 2) // 3)
