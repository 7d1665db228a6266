"""Conformance suite: does a file server speak the lab's protocol, and survive its clients?

    python -m app.conformance --host alpine-1 --port 8889 --protocol stream
    python -m app.conformance --host alpine-1 --port 6666 --protocol json --only roundtrip.1MiB
    python -m app.conformance --host alpine-1 --protocol stream --json     # one JSON object per case and line

``python orchestrate.py check DIR`` starts your server in alpine-1 and runs
this program in alpine-2 against it. Each *case* checks one rule of the wire
protocol (README: "Wire protocol (port 8889)" and "The course's JSON protocol
(port 6666)") or one thing real clients do to a server: send a header in
pieces, leave in the middle of an upload, stay silent, upload slowly, upload
the same name at the same time. The cases are listed once, in ``all_cases()``
below, with stable ids; ``--only ID`` runs one of them alone.

A failed case prints a *transcript*: what was sent and what came back, up to
the first answer that differed from the expected one (marked ``expected:``),
and the command that replays the case alone. Lines starting ``>`` were sent,
``<`` received, ``#`` are notes; a label before the arrow (``c-3>``) names
one of several connections open at the same time.

Rules the suite keeps, so that it can judge any server:

* Nothing hangs: every socket call ends by a deadline (the stress client's
  ``until_deadline``), each case has its own time limit and ``--timeout``
  bounds the whole run. A server that never answers fails its cases with
  "no answer within N s".
* Memory stays flat: files are made, encoded, sent, received and hashed
  piece by piece, so the 100 MiB case holds a few MiB at most.
* Only the protocol is assumed: the streaming upload header has three words
  (the ``sha256`` word is this lab's extension), answers are judged by their
  status word (``OK``/``ERROR``, or the JSON ``status``), and every upload
  is checked by downloading it again and comparing SHA-256 digests.

Exit status: 0 when every case passed (or was skipped), 1 when one failed,
2 for bad usage.
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import json
import os
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from app import json_protocol, protocol
from app.contract import PROTOCOL_PORTS, SERVER_NODE, conformance_command
from app.stress_client import ServerError, TransferError, json_get, read_json_answer, stream_get, until_deadline

KiB = 1024
MiB = 1024 * KiB
BOTH = ("stream", "json")
STREAM = ("stream",)
JSON = ("json",)
PATIENCE = 10.0  # seconds a server may stay silent before "no answer within N s" (a case may allow more)


@dataclass(frozen=True)
class Case:
    """One check. ``run`` returns a sentence saying what happened, or raises Failed."""

    id: str  # stable: reports and --only use it
    category: str
    points: int
    protocols: tuple[str, ...]  # the protocols it is written for
    run: Callable[[Check], str]
    seconds: float = 30.0  # its own time limit (the run's --timeout may cut it shorter)
    patience: float = PATIENCE  # seconds the server may stay silent in this case


def all_cases() -> list[Case]:
    """Every case, in the order they run."""
    return [
        # start: if start.listens fails, the others are skipped
        Case("start.listens", "start", 2, BOTH, start_listens),
        Case("start.answers", "start", 1, BOTH, start_answers),
        # roundtrip: upload, download, compare SHA-256
        Case("roundtrip.0B", "roundtrip", 1, BOTH, partial(roundtrip, name="rt-0B.bin", content=Content(0))),
        Case("roundtrip.1B", "roundtrip", 1, BOTH, partial(roundtrip, name="rt-1B.bin", content=Content(1))),
        Case("roundtrip.1MiB", "roundtrip", 1, BOTH, partial(roundtrip, name="rt-1MiB.bin", content=Content(MiB))),
        # (the host reads the server's peak memory after roundtrip.10MiB and roundtrip.100MiB, each run --only)
        Case("roundtrip.10MiB", "roundtrip", 1, BOTH,
             partial(roundtrip, name="rt-10MiB.bin", content=Content(10 * MiB)), seconds=60),
        Case("roundtrip.100MiB", "roundtrip", 3, BOTH,
             partial(roundtrip, name="rt-100MiB.bin", content=Content(100 * MiB)), seconds=120, patience=30),
        Case("roundtrip.binary", "roundtrip", 1, BOTH,
             partial(roundtrip, name="rt-binary.bin", content=Content(256 * KiB, head=EVERY_BYTE))),
        Case("roundtrip.mixed-case-name", "roundtrip", 1, BOTH, roundtrip_mixed_case_name),
        # framing: where requests begin and end
        Case("framing.header-split", "framing", 1, BOTH, framing_header_split),
        Case("framing.payload-with-header", "framing", 1, STREAM, framing_payload_with_header),
        Case("framing.bare-command", "framing", 1, JSON, framing_bare_command),
        Case("framing.keep-open", "framing", 1, JSON, framing_keep_open),
        # bad: a bad request gets an error answer, and the server goes on serving
        Case("bad.unknown-command", "bad", 1, BOTH, bad_unknown_command),
        Case("bad.missing-size", "bad", 1, BOTH, bad_missing_size),
        Case("bad.absurd-size", "bad", 1, STREAM, bad_absurd_size),
        Case("bad.invalid-base64", "bad", 1, BOTH, bad_invalid_base64),
        Case("bad.traversal-name", "bad", 1, BOTH, bad_traversal_name),
        Case("bad.long-name", "bad", 1, BOTH, bad_long_name),
        # robust: clients that leave, stay silent or are slow
        Case("robust.client-leaves", "robust", 1, BOTH, robust_client_leaves),
        Case("robust.idle-connections", "robust", 1, BOTH, robust_idle_connections, seconds=60, patience=20),
        Case("robust.slow-client", "robust", 1, BOTH, robust_slow_client, seconds=60),
        # concurrency: many clients at once
        # (a server that serves one client at a time may keep the last ones waiting: more patience)
        Case("concurrency.interleaved", "concurrency", 2, BOTH, concurrency_interleaved, seconds=60, patience=30),
        Case("concurrency.same-name", "concurrency", 2, BOTH, concurrency_same_name, seconds=90, patience=30),
    ]  # fmt: skip


GATE = "start.listens"  # when it fails, nothing else can be checked

# --- limits and sizes ---------------------------------------------------------------

DEFAULT_WORKERS = 5  # --workers: robust.idle-connections opens this many + 2 silent connections
DEFAULT_TIMEOUT = 600.0  # --timeout: seconds for the whole run
CONNECT_WITHIN = 10.0  # seconds to make a connection (once the server listens)
ANSWER_WITHIN = 10.0  # seconds for the whole answer to a small request
RETRY_PAUSE = 0.25  # start.listens: seconds between two tries
PIECE = 768 * KiB  # file bytes made and encoded at a time: a multiple of 3, so base64 pieces join up
SHOWN = 300  # bytes of each line of a transcript shown
SHOWN_LINES = 60  # lines of a transcript shown (the first and the last ones)

EVERY_BYTE = bytes(range(256)) + b'\r\n\r\n"\\'  # every byte value, a terminator and JSON's special characters
MIXED_CASE_NAME = "Report-MixedCase.BIN"
CANARY = "canary.bin"  # the bad cases check that it still downloads intact after each bad request
CANARY_SIZE = 64 * KiB
SPLIT_PAUSE = 0.01  # framing.header-split: seconds between the one-byte sends
LEAVE_WAIT = 2.0  # robust.client-leaves: seconds for the server to notice that the client left
IDLE_SETTLE = 0.5  # robust.idle-connections: seconds for the server to accept the silent connections
IDLE_ANSWER_WITHIN = 20.0  # ... and for the answer beside them (the case's patience too)
# robust.slow-client: a 384 KiB file's 512 KiB of base64 at 96 KiB/s take about 5 s. "Slow" means far
# slower than any network, but not slower than 64 KiB/s: the lab's server cuts uploads slower than that
# (--min-upload-rate), a sound defence against clients that trickle, which this case must not punish.
SLOW_SIZE = 384 * KiB
SLOW_RATE = 96 * KiB  # base64 characters per second
SLOW_SLICE = 8 * KiB  # characters per send
SLOW_OTHER_AFTER = 1.0  # seconds into the slow upload when the other client's GET starts
# The concurrency cases: 8 clients whose uploads go side by side, piece k of every client at the same
# moment (SIDE_BY_SIDE_LEAD seconds after they start, for connecting), so that a server that mixes them
# up (one shared buffer, one file written in place by all) shows it every time, not once in a while.
CLIENTS = 8
SIDE_BY_SIDE_RATE = 4 * MiB  # base64 characters per second and client
SIDE_BY_SIDE_SLICE = 64 * KiB
SIDE_BY_SIDE_LEAD = 1.0
SIDE_BY_SIDE_NOTE = f"{CLIENTS} uploads side by side, each {SIDE_BY_SIDE_SLICE // KiB} KiB of base64 at a time"


# --- how a case fails ---------------------------------------------------------------


class Failed(Exception):
    """A case failed.

    ``detail`` is one sentence saying what happened; ``expected`` what the server
    should have sent instead (shown at the end of the transcript); ``focus`` the
    label of the connection whose lines the transcript shows, when several ran at once.
    """

    def __init__(self, detail: str, expected: str | None = None, focus: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.expected = expected
        self.focus = focus


class Silence(TimeoutError):
    """The server sent nothing (or took nothing) for ``seconds``: what a traced socket raises on a timeout."""

    def __init__(self, text: str, seconds: float) -> None:
        super().__init__(f"{text} within {seconds_text(seconds)} s")
        self.seconds = seconds


def describe(exc: BaseException) -> str:
    """What a socket error or a bad answer means, in words."""
    if isinstance(exc, Silence):
        return str(exc)
    if isinstance(exc, ServerError):
        return f"the server answered with an error: {str(exc).removeprefix('server: ')}"
    if isinstance(exc, TransferError):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return "the server closed (reset) the connection"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return f"{type(exc).__name__}: {exc}"


def seconds_text(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds >= 9.95 else f"{seconds:.1f}"


# --- transcripts --------------------------------------------------------------------


@dataclass
class Line:
    """One line of a transcript: the bytes that went one way on one connection in a row, or a note."""

    label: str  # the connection's label ("" for the case's main connections)
    arrow: str  # ">" sent, "<" received, "#" a note
    payload: bool = False  # an upload's base64: only its length is shown
    head: bytearray = field(default_factory=bytearray)  # the first SHOWN bytes
    total: int = 0
    note: str = ""

    def text(self) -> str:
        if self.arrow == "#":
            return f"# {self.label}: {self.note}" if self.label else f"# {self.note}"
        if self.note:
            return f"{self.label}{self.arrow} {self.note}"
        if self.payload:
            return f"{self.label}{self.arrow} <{self.total} base64 characters>"
        shown = repr(bytes(self.head))[2:-1]  # b'...' without b'' and quotes: \r\n stays visible
        if self.total > len(self.head):
            shown += f"... <{self.total} bytes in all>"
        return f"{self.label}{self.arrow} {shown}"


class Transcript:
    """What a case sent and received, abbreviated; shown when the case fails.

    Several threads may write to it (one per connection): each connection adds
    to its own current line, so their lines never mix.
    """

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.current: dict[int, Line] = {}  # connection number -> the line it is adding to
        self.connections = 0
        self.lock = threading.Lock()

    def new_connection(self) -> int:
        with self.lock:
            self.connections += 1
            return self.connections

    def record(self, connection: int, label: str, arrow: str, data: bytes | memoryview, payload: bool = False) -> None:
        """Add bytes sent (``>``) or received (``<``) on a connection."""
        with self.lock:
            line = self.current.get(connection)
            if line is None or line.arrow != arrow or line.payload != payload:
                line = Line(label, arrow, payload)
                self.lines.append(line)
                self.current[connection] = line
            if len(line.head) < SHOWN:
                line.head += data[: SHOWN - len(line.head)]
            line.total += len(data)

    def event(self, connection: int, label: str, arrow: str, text: str) -> None:
        """A line of its own, e.g. ``< (the server closed the connection)``; the next bytes start a new line."""
        with self.lock:
            self.lines.append(Line(label, arrow, note=text))
            self.current.pop(connection, None)

    def note(self, text: str, label: str = "") -> None:
        """A remark of the suite's own (``# ...``); the bytes after it start new lines."""
        with self.lock:
            self.lines.append(Line(label, "#", note=text))
            self.current.clear()

    def render(self, expected: str | None = None, focus: str | None = None) -> str:
        """The transcript as text; ``expected`` is appended to its last line."""
        with self.lock:
            lines = [line.text() for line in self.lines if focus is None or line.label == focus]
        if len(lines) > SHOWN_LINES:
            head, tail = SHOWN_LINES // 3, SHOWN_LINES - SHOWN_LINES // 3
            lines = [*lines[:head], f"# ... {len(lines) - head - tail} lines left out ...", *lines[-tail:]]
        if expected:
            if lines:
                lines[-1] += f"          expected: {expected}"
            else:
                lines.append(f"# expected: {expected}")
        return "\n".join(lines)


class TracedSocket(socket.socket):
    """A TCP socket that writes what passes through it into a case's transcript.

    It is a real socket, so the stress client's functions (``stream_get``,
    ``json_get`` ...) work on it unchanged. Every call on it waits at most
    ``patience`` seconds, even when the deadline is further away: a server
    silent that long has not answered, and the case fails with Silence.
    """

    def __init__(
        self, family: int, kind: int, proto: int, transcript: Transcript, label: str = "", patience: float = PATIENCE
    ) -> None:
        super().__init__(family, kind, proto)
        self.transcript = transcript
        self.label = label
        self.patience = patience
        self.number = transcript.new_connection()
        self.pause = 0.0  # > 0: sendall() sends one byte at a time, this many seconds apart

    def settimeout(self, value: float | None) -> None:
        # until_deadline() sets the time left before the deadline: wait no longer than the patience.
        super().settimeout(self.patience if value is None else min(value, self.patience))

    def send_slowly(self, pause: float) -> None:
        """From now on send every byte in a segment of its own (TCP_NODELAY), ``pause`` seconds apart."""
        self.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.pause = pause
        self.transcript.note(f"the next request goes one byte per send, {pause * 1000:.0f} ms apart", self.label)

    def sendall(self, data, flags: int = 0) -> None:  # type: ignore[override]
        self.transcript.record(self.number, self.label, ">", data)
        with self._traced(">"):
            if not self.pause:
                super().sendall(data, flags)
                return
            for index in range(len(data)):  # bounded: one round per byte of a short request
                super().sendall(data[index : index + 1], flags)
                time.sleep(self.pause)

    def send_payload(self, text: bytes) -> None:
        """Send part of an upload's base64 text: the transcript shows only how many characters."""
        self.transcript.record(self.number, self.label, ">", text, payload=True)
        with self._traced(">"):
            super().sendall(text)

    def recv(self, size: int, flags: int = 0) -> bytes:
        with self._traced("<"):
            data = super().recv(size, flags)
        self._received(data)
        return data

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:  # type: ignore[override]
        with self._traced("<"):
            count = super().recv_into(buffer, nbytes, flags)
        self._received(memoryview(buffer)[:count])
        return count

    def _received(self, data: bytes | memoryview) -> None:
        if data:
            self.transcript.record(self.number, self.label, "<", data)
        else:
            self.transcript.event(self.number, self.label, "<", "(the server closed the connection)")

    @contextmanager
    def _traced(self, arrow: str) -> Iterator[None]:
        """Write a timeout or a reset into the transcript; a timeout goes on as Silence."""
        waited = self.gettimeout() or 0.0
        try:
            yield
        except TimeoutError:
            text = "no answer" if arrow == "<" else "the server took no data"
            self.transcript.event(self.number, self.label, arrow, f"({text} within {seconds_text(waited)} s)")
            raise Silence(text, waited) from None
        except (ConnectionResetError, BrokenPipeError):
            self.transcript.event(self.number, self.label, arrow, "(the connection was reset)")
            raise


def open_connection(
    host: str, port: int, deadline: float, transcript: Transcript, label: str = "", patience: float = PATIENCE
) -> TracedSocket:
    """A traced connection to ``host:port``, made before ``deadline``."""
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = TracedSocket(family, kind, proto, transcript, label, patience)
        try:
            until_deadline(sock, deadline)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


# --- files, made piece by piece -----------------------------------------------------


@dataclass(frozen=True)
class Content:
    """A file's bytes, made while they are sent: even 100 MiB is never held in memory.

    Random bytes (new ones on every upload: the upload returns their digest),
    or ``fill``, one byte value repeated; ``head`` comes first.
    """

    size: int
    fill: int | None = None
    head: bytes = b""

    def pieces(self) -> Iterator[bytes]:
        yield self.head[: self.size]
        left = self.size - len(self.head[: self.size])
        while left > 0:  # bounded: size / PIECE rounds
            count = min(PIECE, left)
            yield os.urandom(count) if self.fill is None else bytes([self.fill]) * count
            left -= count


def base64_pieces(content: Content, seen: Callable[[bytes], object]) -> Iterator[bytes]:
    """The base64 text of ``content``, piece by piece; ``seen`` is given every file byte on the way (to hash it)."""
    carry = b""  # 0-2 bytes that do not complete a group of 3 yet: base64 encodes 3 bytes at a time
    for piece in content.pieces():
        seen(piece)
        data = carry + piece
        whole = len(data) - len(data) % 3
        carry = data[whole:]
        if whole:
            yield binascii.b2a_base64(data[:whole], newline=False)
    if carry:
        yield binascii.b2a_base64(carry, newline=False)


@dataclass(frozen=True)
class Pace:
    """Send an upload's base64 at ``rate`` characters per second, ``piece`` characters at a time.

    Each piece goes at its time on a schedule that begins at ``start`` (a
    ``time.monotonic()``; None: when sending begins), so the rate holds however
    long a send takes, and clients given one ``start`` send side by side.
    """

    rate: float
    piece: int = SLOW_SLICE
    start: float | None = None


def send_base64(
    sock: TracedSocket, content: Content, deadline: float, pace: Pace | None = None, limit: int | None = None
) -> str:
    """Send ``content`` as base64 text; returns the SHA-256 of its bytes.

    ``pace``: how fast (None: as fast as the server takes it). ``limit``: stop
    after that many characters (a client that leaves in the middle).
    """
    hasher = hashlib.sha256()
    sent = 0
    start = time.monotonic() if pace is None or pace.start is None else pace.start
    for text in base64_pieces(content, hasher.update):
        if limit is not None:
            text = text[: limit - sent]
        step = pace.piece if pace else max(len(text), 1)
        for at in range(0, len(text), step):
            if pace:  # wait for this piece's time
                wait = start + sent / pace.rate - time.monotonic()
                if wait > deadline - time.monotonic():
                    raise TimeoutError
                time.sleep(max(wait, 0))
            until_deadline(sock, deadline)
            sock.send_payload(text[at : at + step])
            sent += len(text[at : at + step])
        if limit is not None and sent >= limit:
            break
    return hasher.hexdigest()


# --- the two protocols ----------------------------------------------------------------


class StreamReplies:
    """Reads the streaming dialect's answers (``OK ...`` / ``ERROR ...`` ended by a blank line) on one connection.

    An upload gets two answers, which may arrive together: the bytes after the
    first are kept for the next call.
    """

    def __init__(self, sock: TracedSocket) -> None:
        self.sock = sock
        self.buffer = b""

    def next(self, deadline: float) -> bytes:
        """The next answer, without its blank line. TransferError if the server closes without one."""
        for _ in range(protocol.MAX_HEADER_BYTES + 1):  # bounded: each round receives a byte or returns
            at = self.buffer.find(protocol.TERMINATOR)
            if at != -1:
                answer, self.buffer = self.buffer[:at], self.buffer[at + len(protocol.TERMINATOR) :]
                return answer
            if len(self.buffer) > protocol.MAX_HEADER_BYTES:
                raise TransferError(f"an answer without \\r\\n\\r\\n in its first {protocol.MAX_HEADER_BYTES} bytes")
            until_deadline(self.sock, deadline)
            data = self.sock.recv(65536)
            if not data:
                if self.buffer.strip():  # an answer without its blank line: judged all the same
                    answer, self.buffer = self.buffer.strip(), b""
                    return answer
                raise TransferError("the server closed the connection without an answer")
            self.buffer += data
        raise TransferError("an answer that never ends")


def expect_ok(answer: bytes) -> None:
    """Accept an ``OK ...`` answer of the streaming dialect."""
    if answer.startswith(b"OK"):
        return
    if answer.startswith(b"ERROR"):
        raise ServerError(answer[len(b"ERROR") :].strip().decode("utf-8", "replace"))
    raise TransferError(f"the server answered {answer[:80]!r}, neither OK nor ERROR")


def stream_upload(sock: TracedSocket, name: str, content: Content, deadline: float, pace: Pace | None = None) -> str:
    """``UPLOAD <name> <n>`` (three words), ``OK``, the base64, ``OK``; returns the file's SHA-256."""
    replies = StreamReplies(sock)
    until_deadline(sock, deadline)
    sock.sendall(protocol.upload_header(name, protocol.base64_length(content.size)))
    expect_ok(replies.next(deadline))
    try:
        digest = send_base64(sock, content, deadline, pace)
    except (BrokenPipeError, ConnectionResetError):
        # The server refused the rest and closed: its answer, if it sent one, says why.
        expect_ok(replies.next(min(deadline, time.monotonic() + 1)))
        raise
    expect_ok(replies.next(deadline))
    return digest


def json_upload(sock: TracedSocket, name: str, content: Content, deadline: float, pace: Pace | None = None) -> str:
    """``UPLOAD <name> <base64>\\r\\n\\r\\n`` in one request, then its answer; returns the file's SHA-256."""
    until_deadline(sock, deadline)
    sock.sendall(json_protocol.upload_prefix(name))
    try:
        digest = send_base64(sock, content, deadline, pace)
        until_deadline(sock, deadline)
        sock.sendall(protocol.TERMINATOR)
    except (BrokenPipeError, ConnectionResetError):
        json_ok(read_json_answer(sock, min(deadline, time.monotonic() + 1)))
        raise
    json_ok(read_json_answer(sock, deadline))
    return digest


def json_ok(answer: dict[str, object]) -> None:
    """Accept a JSON answer whose status is OK."""
    if answer.get("status") != "OK":
        raise ServerError(answer.get("data"))


def short(answer: object) -> str:
    text = json.dumps(answer) if isinstance(answer, dict) else repr(answer)
    return text if len(text) <= 200 else text[:200] + "..."


# --- what a case works with -----------------------------------------------------------


@dataclass
class Target:
    """The server under test, and what the cases of one run share."""

    host: str
    port: int
    protocol: str  # "stream" or "json"
    workers: int = DEFAULT_WORKERS
    token: str = field(default_factory=lambda: os.urandom(4).hex())  # makes names no earlier run used
    canary: tuple[int, str] | None = None  # (size, sha256) of CANARY once stored in this run


class Check:
    """What one case works with: the server, the case's deadline and its transcript.

    Every exchange with the server is a *step* (``with check.step(what) as
    deadline:``): its socket calls end by the step's deadline, and any error
    becomes Failed("<what>: <what went wrong>").
    """

    def __init__(self, target: Target, deadline: float, patience: float = PATIENCE) -> None:
        self.target = target
        self.deadline = deadline
        self.patience = patience  # seconds the server may stay silent (TracedSocket)
        self.transcript = Transcript()

    @property
    def stream(self) -> bool:
        return self.target.protocol == "stream"

    @contextmanager
    def step(self, what: str, within: float | None = None, expected: str | None = None) -> Iterator[float]:
        """Yield the deadline of one exchange (``within`` seconds, or the rest of the case)."""
        started = time.monotonic()
        deadline = self.deadline if within is None else min(self.deadline, started + within)
        try:
            yield deadline
        except Failed:
            raise
        except Silence as exc:
            raise Failed(f"{what}: {exc}", expected) from None
        except TimeoutError:  # the step's own deadline
            raise Failed(f"{what}: not finished within {seconds_text(deadline - started)} s", expected) from None
        except (TransferError, OSError) as exc:
            raise Failed(f"{what}: {describe(exc)}", expected) from None

    def connect(self, label: str = "") -> TracedSocket:
        """A new traced connection to the server."""
        with self.step(f"connect to {self.target.host}:{self.target.port}", CONNECT_WITHIN) as deadline:
            return open_connection(self.target.host, self.target.port, deadline, self.transcript, label, self.patience)

    def upload(self, name: str, content: Content, label: str = "", pace: Pace | None = None) -> str:
        """Upload ``content`` as ``name`` (one request, on a connection of its own); returns its SHA-256."""
        expected = "OK ..." if self.stream else '{"status": "OK", ...}'
        with self.step(f"UPLOAD {name}", expected=expected) as deadline, self.connect(label) as sock:
            if self.stream:
                return stream_upload(sock, name, content, deadline, pace)
            return json_upload(sock, name, content, deadline, pace)

    def file_answer(self, name: str, size: int | str = "<size>") -> str:
        """How the answer to ``GET name`` should look."""
        if self.stream:
            return f"OK {size}, then the bytes uploaded"
        return f'{{"status": "OK", "data_namafile": "{name}", "data_file": "<base64 of the {size} bytes uploaded>"}}'

    def download(
        self,
        name: str,
        sock: TracedSocket | None = None,
        label: str = "",
        within: float | None = None,
        sink: Callable[[bytes | memoryview], object] | None = None,
        what: str | None = None,
    ) -> tuple[int, str]:
        """``GET name`` (on ``sock``, or on a new connection); returns (size, SHA-256) of what came."""
        get = stream_get if self.stream else json_get
        with self.step(what or f"GET {name}", within, self.file_answer(name)) as deadline:
            if sock is not None:
                return get(sock, name, deadline, sink)[:2]
            with self.connect(label) as new:
                return get(new, name, deadline, sink)[:2]

    def expect_file(self, name: str, size: int, digest: str, **options) -> None:
        """``GET name`` must give exactly ``size`` bytes with this SHA-256 (options: those of download)."""
        got_size, got_digest = self.download(name, **options)
        what = options.get("what") or f"GET {name}"
        if got_size != size:
            raise Failed(f"{what} gave {got_size} bytes, not the {size} uploaded", self.file_answer(name, size))
        if got_digest != digest:
            raise Failed(f"{what} gave {size} bytes, but not the ones uploaded", self.file_answer(name, size))

    def refused(self, what: str, request: bytes, body: bytes = b"") -> str:
        """Send a request the server must refuse; returns the text of its error answer.

        Streaming dialect: ``request`` is a header; when the server answers OK
        (ready for an upload's body: it may check only at the end), ``body``
        is sent and the answer after it must be the error. JSON: ``request``
        is the whole request.
        """
        expected = "ERROR <message>" if self.stream else '{"status": "ERROR", "data": "<message>"}'
        with self.step(what, ANSWER_WITHIN, expected) as deadline, self.connect() as sock:
            until_deadline(sock, deadline)
            sock.sendall(request)
            if self.stream:
                replies = StreamReplies(sock)
                answer = replies.next(deadline)
                if answer.startswith(b"OK") and body:
                    until_deadline(sock, deadline)
                    sock.send_payload(body)
                    answer = replies.next(deadline)
                if not answer.startswith(b"ERROR"):
                    raise Failed(f"{what}: the server answered {answer[:80]!r}, not an error", expected)
                return answer.decode("utf-8", "replace")
            reply = read_json_answer(sock, deadline)
            if reply.get("status") != "ERROR":
                raise Failed(f"{what}: the server answered {short(reply)}, not an error", expected)
            return short(reply)

    def store_canary(self) -> None:
        """Store CANARY once per run (the bad cases' witness that the server still works)."""
        if self.target.canary is None:
            digest = self.upload(CANARY, Content(CANARY_SIZE))
            self.target.canary = (CANARY_SIZE, digest)

    def canary_intact(self) -> None:
        assert self.target.canary is not None
        size, digest = self.target.canary
        self.expect_file(CANARY, size, digest, what=f"after the bad request, GET {CANARY}")


def run_together(tasks: list[Callable[[], object]], deadline: float) -> list[object]:
    """Run ``tasks`` in threads that start at the same moment; each one's result, or the exception it raised.

    Every task ends by its own deadlines; a thread still running at
    ``deadline`` (plus a few seconds) gives up its result as TimeoutError.
    """
    results: list[object] = [TimeoutError() for _ in tasks]
    start = threading.Barrier(len(tasks))

    def work(index: int) -> None:
        try:
            start.wait(timeout=10)
            results[index] = tasks[index]()
        except Exception as exc:
            results[index] = exc

    # Daemon threads: a stuck one can never keep the program from ending.
    threads = [threading.Thread(target=work, args=(index,), daemon=True) for index in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline - time.monotonic(), 0) + 5)
    return results


def first_failure(results: list[object], labels: list[str], what: str) -> None:
    """Raise Failed for the first of ``results`` that is an exception (the transcript shows its connection)."""
    failures = [(label, result) for label, result in zip(labels, results, strict=True) if isinstance(result, Exception)]
    if not failures:
        return
    label, error = failures[0]
    detail = error.detail if isinstance(error, Failed) else describe(error)
    expected = error.expected if isinstance(error, Failed) else None
    raise Failed(f"{len(failures)} of {len(results)} {what} failed; {label}: {detail}", expected, focus=label)


# --- the cases: start ----------------------------------------------------------------


def start_listens(check: Check) -> str:
    """A TCP connection succeeds within the case's time (the server may still be starting: retry)."""
    target = check.target
    started = time.monotonic()
    error: OSError | None = None
    tries = 0
    while time.monotonic() < check.deadline and tries < 10_000:  # bounded by the deadline (and a count)
        tries += 1
        try:
            attempt = min(check.deadline, time.monotonic() + 2)
            with open_connection(target.host, target.port, attempt, check.transcript):
                return f"the server accepted a connection after {time.monotonic() - started:.1f} s"
        except OSError as exc:
            error = exc
        time.sleep(max(min(RETRY_PAUSE, check.deadline - time.monotonic()), 0))
    reason = describe(error) if error else "no time to try"
    check.transcript.note(f"{tries} tries to connect to {target.host}:{target.port}; the last: {reason}")
    raise Failed(
        f"nothing accepted a connection on {target.host}:{target.port} within "
        f"{seconds_text(time.monotonic() - started)} s ({reason})"
    )


def start_answers(check: Check) -> str:
    """A GET of a file that does not exist gets an error answer within 10 s."""
    name = f"missing-{check.target.token}.bin"
    answer = check.refused(f"GET {name} (a file that does not exist)", protocol.get_header(name))
    return f"a GET of a file that does not exist was answered {answer}"


# --- the cases: roundtrip --------------------------------------------------------------


def roundtrip(check: Check, name: str, content: Content) -> str:
    """Upload ``content`` as ``name``, download it: the same bytes must come back."""
    started = time.monotonic()
    digest = check.upload(name, content)
    check.expect_file(name, content.size, digest)
    return f"{content.size} bytes uploaded as {name} came back intact ({time.monotonic() - started:.1f} s)"


def roundtrip_mixed_case_name(check: Check) -> str:
    """A name keeps its case: ``Report-MixedCase.BIN`` and ``report-mixedcase.bin`` are two files."""
    name, twin = MIXED_CASE_NAME, MIXED_CASE_NAME.lower()
    digest = check.upload(name, Content(12))
    twin_digest = check.upload(twin, Content(20))
    size, got = check.download(name)
    if got == twin_digest:
        raise Failed(
            f"GET {name} gave the file uploaded as {twin}: the server does not keep the case of names",
            check.file_answer(name, 12),
        )
    if (size, got) != (12, digest):
        raise Failed(f"GET {name} gave {size} bytes, not the 12 uploaded under that name", check.file_answer(name, 12))
    check.expect_file(twin, 20, twin_digest)
    return f"{name} and {twin} were stored as two files and came back intact under exactly their names"


# --- the cases: framing ----------------------------------------------------------------


def framing_header_split(check: Check) -> str:
    """A request header that arrives one byte per segment is answered like any other."""
    name = "split.bin"
    digest = check.upload(name, Content(1000))
    with check.connect() as sock:
        sock.send_slowly(SPLIT_PAUSE)
        check.expect_file(name, 1000, digest, sock=sock, within=ANSWER_WITHIN, what=f"GET {name} sent byte by byte")
    return f"GET {name}, sent one byte per send {SPLIT_PAUSE * 1000:.0f} ms apart, was answered correctly"


def framing_payload_with_header(check: Check) -> str:
    """Streaming dialect: an upload's header and its whole payload in one send are stored correctly."""
    name = "payload-with-header.bin"
    data = os.urandom(1200)
    text = binascii.b2a_base64(data, newline=False)
    what = f"UPLOAD {name} (header and payload in one send)"
    with check.step(what, ANSWER_WITHIN, "OK ...") as deadline, check.connect() as sock:
        until_deadline(sock, deadline)
        sock.sendall(protocol.upload_header(name, len(text)) + text)
        replies = StreamReplies(sock)
        expect_ok(replies.next(deadline))  # ready
        expect_ok(replies.next(deadline))  # stored
    check.expect_file(name, len(data), hashlib.sha256(data).hexdigest())
    return f"an upload whose {len(text)} base64 characters came in the header's send was stored intact"


def framing_bare_command(check: Check) -> str:
    """JSON: the reference client's bare ``LIST`` and ``GET name`` (no terminator) on one open connection."""
    name = "bare.bin"
    digest = check.upload(name, Content(1000))
    with check.connect() as sock:
        expected = f'{{"status": "OK", "data": [..., "{name}", ...]}}'
        with check.step("LIST sent bare (no \\r\\n\\r\\n)", ANSWER_WITHIN, expected) as deadline:
            until_deadline(sock, deadline)
            sock.sendall(b"LIST")
            answer = read_json_answer(sock, deadline)
        names = answer.get("data")
        if answer.get("status") != "OK" or not isinstance(names, list) or name not in names:
            raise Failed(f"LIST sent bare was answered {short(answer)}, without {name}", expected)
        expected = check.file_answer(name, 1000)
        with check.step(f"GET {name} sent bare on the same connection", ANSWER_WITHIN, expected) as deadline:
            until_deadline(sock, deadline)
            sock.sendall(f"GET {name}".encode())
            answer = read_json_answer(sock, deadline)  # a small file: the whole answer is kept
            json_ok(answer)
        try:
            data = binascii.a2b_base64(str(answer.get("data_file")), strict_mode=True)
        except binascii.Error:
            raise Failed(f"GET {name} sent bare: data_file is not valid base64", expected) from None
        if answer.get("data_namafile") != name or hashlib.sha256(data).hexdigest() != digest:
            raise Failed(f"GET {name} sent bare was answered with another file's name or bytes", expected)
    return f"bare LIST and GET {name} on one connection were both answered correctly"


def framing_keep_open(check: Check) -> str:
    """JSON: three requests, each ended by \\r\\n\\r\\n, on one connection: three right answers."""
    first, second = "keep-open-1.bin", "keep-open-2.bin"
    first_digest = check.upload(first, Content(1000))
    second_digest = check.upload(second, Content(2000))
    with check.connect() as sock:
        check.expect_file(first, 1000, first_digest, sock=sock, within=ANSWER_WITHIN, what=f"request 1, GET {first}")
        expected = f'{{"status": "OK", "data": [..., "{first}", "{second}", ...]}}'
        with check.step("request 2, LIST, on the same connection", ANSWER_WITHIN, expected) as deadline:
            until_deadline(sock, deadline)
            sock.sendall(json_protocol.request("LIST"))
            answer = read_json_answer(sock, deadline)
        names = answer.get("data")
        if answer.get("status") != "OK" or not isinstance(names, list) or not {first, second} <= set(names):
            raise Failed(f"request 2, LIST, was answered {short(answer)}", expected)
        what = f"request 3, GET {second}, on the same connection"
        check.expect_file(second, 2000, second_digest, sock=sock, within=ANSWER_WITHIN, what=what)
    return "GET, LIST and GET on one kept-open connection were all answered correctly"


# --- the cases: bad requests ------------------------------------------------------------


def bad_request(check: Check, what: str, request: bytes, body: bytes = b"") -> str:
    """``request`` must get an error answer, and the canary must still download intact afterwards."""
    check.store_canary()
    answer = check.refused(what, request, body)
    check.canary_intact()
    return f"{what} was refused ({answer}); the server then still served {CANARY} intact"


def bad_unknown_command(check: Check) -> str:
    return bad_request(check, "an unknown command, FROB x", b"FROB x" + protocol.TERMINATOR)


def bad_missing_size(check: Check) -> str:
    if check.stream:
        return bad_request(check, "UPLOAD without its size", b"UPLOAD x.bin" + protocol.TERMINATOR)
    return bad_request(check, "UPLOAD without a name", b"UPLOAD" + protocol.TERMINATOR)


def bad_absurd_size(check: Check) -> str:
    request = b"UPLOAD x.bin 99999999999999999999999" + protocol.TERMINATOR
    return bad_request(check, "UPLOAD with a 23-digit size", request)


def bad_invalid_base64(check: Check) -> str:
    """An upload that is not base64 is refused and stores nothing: the previous version stays."""
    name = "bad-base64.bin"
    check.store_canary()
    previous = check.upload(name, Content(100))
    garbage = b"@" * 64
    if check.stream:
        answer = check.refused(f"UPLOAD {name} of 64 '@'", protocol.upload_header(name, len(garbage)), garbage)
    else:
        request = json_protocol.request("UPLOAD", name, garbage.decode())
        answer = check.refused(f"UPLOAD {name} of 64 '@'", request)
    check.expect_file(name, 100, previous, what=f"after the refused upload, GET {name} (the previous version)")
    check.canary_intact()
    return f"an upload of invalid base64 was refused ({answer}) and left the previous version of {name} intact"


def bad_traversal_name(check: Check) -> str:
    """Names that point outside the storage folder are refused, for GET and for UPLOAD."""
    check.store_canary()
    got = check.refused("GET ../../../etc/passwd", protocol.get_header("../../../etc/passwd"))
    body = binascii.b2a_base64(b"escape", newline=False)
    if check.stream:
        stored = check.refused("UPLOAD ../escape.txt", protocol.upload_header("../escape.txt", len(body)), body)
    else:
        stored = check.refused("UPLOAD ../escape.txt", json_protocol.request("UPLOAD", "../escape.txt", body.decode()))
    check.canary_intact()
    return f"GET ../../../etc/passwd ({got}) and UPLOAD ../escape.txt ({stored}) were refused"


def bad_long_name(check: Check) -> str:
    """An upload under a 300-byte name (longer than any file system allows) gets an error answer."""
    name = "n" * 296 + ".bin"
    body = binascii.b2a_base64(b"long", newline=False)
    if check.stream:
        return bad_request(check, "UPLOAD of a 300-byte name", protocol.upload_header(name, len(body)), body)
    return bad_request(check, "UPLOAD of a 300-byte name", json_protocol.request("UPLOAD", name, body.decode()))


# --- the cases: robust --------------------------------------------------------------------


def robust_client_leaves(check: Check) -> str:
    """A client that leaves in the middle of replacing a file leaves the previous version intact."""
    name = "keep.bin"
    size = 64 * KiB
    digest = check.upload(name, Content(size))  # version A
    second = Content(MiB)  # version B: only half of it will be sent
    length = protocol.base64_length(second.size)
    what = f"UPLOAD {name} (a second version, left after half of it)"
    with check.step(what, ANSWER_WITHIN, "OK ...") as deadline, check.connect() as sock:
        until_deadline(sock, deadline)
        if check.stream:
            sock.sendall(protocol.upload_header(name, length))
            expect_ok(StreamReplies(sock).next(deadline))
        else:
            sock.sendall(json_protocol.upload_prefix(name))
        send_base64(sock, second, deadline, limit=length // 2)
        check.transcript.note(f"the client closes the connection after {length // 2} of {length} characters")
    time.sleep(LEAVE_WAIT)
    check.expect_file(name, size, digest, what=f"{LEAVE_WAIT:g} s after the client left, GET {name}")
    return f"after a client left half-way through replacing {name}, the previous version came back intact"


def robust_idle_connections(check: Check) -> str:
    """Silent connections (more than the workers) do not keep the server from answering another client."""
    name = "idle.bin"
    digest = check.upload(name, Content(1000))
    count = max(check.target.workers, 1) + 2
    idle: list[TracedSocket] = []
    try:
        for index in range(count):
            idle.append(check.connect(f"idle-{index + 1}"))
        check.transcript.note(f"{count} connections open and send nothing")
        time.sleep(IDLE_SETTLE)
        started = time.monotonic()
        what = f"GET {name} beside {count} silent connections"
        check.expect_file(name, 1000, digest, within=IDLE_ANSWER_WITHIN, what=what)
        return f"beside {count} silent connections, GET {name} was answered in {time.monotonic() - started:.1f} s"
    finally:
        for sock in idle:
            sock.close()


def robust_slow_client(check: Check) -> str:
    """A slow upload completes intact, and meanwhile another client is served."""
    name, other = "slow.bin", "slow-other.bin"
    other_digest = check.upload(other, Content(1000))

    def other_client() -> float:
        time.sleep(SLOW_OTHER_AFTER)
        started = time.monotonic()
        what = f"GET {other} during the slow upload"
        check.expect_file(other, 1000, other_digest, label="other", within=ANSWER_WITHIN, what=what)
        return time.monotonic() - started

    slow = partial(check.upload, name, Content(SLOW_SIZE), label="slow", pace=Pace(SLOW_RATE))
    check.transcript.note(f"slow: its base64 goes at {SLOW_RATE // KiB} KiB/s; other: a GET {SLOW_OTHER_AFTER:g} s in")
    started = time.monotonic()
    results = run_together([slow, other_client], check.deadline)
    first_failure(results, ["slow", "other"], "clients")
    upload_seconds = time.monotonic() - started
    check.expect_file(name, SLOW_SIZE, str(results[0]), what=f"GET {name} after its slow upload")
    return (
        f"a {SLOW_SIZE // KiB} KiB upload at {SLOW_RATE // KiB} KiB/s of base64 was stored intact "
        f"({upload_seconds:.1f} s); meanwhile another GET was answered in {results[1]:.1f} s"
    )


# --- the cases: concurrency -----------------------------------------------------------------


def concurrency_interleaved(check: Check) -> str:
    """Eight clients upload different files at once, then download them: no bytes cross between them."""
    labels = [f"c-{index}" for index in range(1, CLIENTS + 1)]
    side_by_side = Pace(SIDE_BY_SIDE_RATE, SIDE_BY_SIDE_SLICE, time.monotonic() + SIDE_BY_SIDE_LEAD)
    tasks = [partial(check.upload, f"{label}.bin", Content(MiB), label=label, pace=side_by_side) for label in labels]
    check.transcript.note(SIDE_BY_SIDE_NOTE)
    uploads = run_together(tasks, check.deadline)
    first_failure(uploads, labels, "concurrent uploads")
    downloads = run_together([partial(check.download, f"{label}.bin", label=label) for label in labels], check.deadline)
    first_failure(downloads, labels, "concurrent downloads")
    wrong = [label for label, digest, got in zip(labels, uploads, downloads, strict=True) if got != (MiB, digest)]
    if wrong:
        raise Failed(
            f"{', '.join(f'{label}.bin' for label in wrong)} came back with other bytes than were uploaded "
            f"(bytes crossed between concurrent clients?)",
            check.file_answer(f"{wrong[0]}.bin", MiB),
            focus=wrong[0],
        )
    return f"{CLIENTS} different 1 MiB files uploaded at the same time all came back intact"


def concurrency_same_name(check: Check) -> str:
    """Eight clients upload 4 MiB to one name at once: the file is then exactly one of their contents."""
    name, size = "same.bin", 4 * MiB
    values = [ord("A") + index for index in range(CLIENTS)]  # upload "A" is 4 MiB of b"A", and so on
    labels = [f"upload-{chr(value)}" for value in values]
    side_by_side = Pace(SIDE_BY_SIDE_RATE, SIDE_BY_SIDE_SLICE, time.monotonic() + SIDE_BY_SIDE_LEAD)
    tasks = [
        partial(check.upload, name, Content(size, fill=value), label=label, pace=side_by_side)
        for value, label in zip(values, labels, strict=True)
    ]
    check.transcript.note(SIDE_BY_SIDE_NOTE)
    uploads = run_together(tasks, check.deadline)
    completed = {value for value, result in zip(values, uploads, strict=True) if isinstance(result, str)}
    if not completed:
        first_failure(uploads, labels, "concurrent uploads to one name")
    counts = dict.fromkeys(values, 0)

    def tally(piece: bytes | memoryview) -> None:
        data = bytes(piece)
        for value in values:
            counts[value] += data.count(value)

    got_size, _ = check.download(name, sink=tally)
    found = [value for value in values if counts[value]]
    foreign = got_size - sum(counts.values())
    expected = f"{size} bytes of one upload only, e.g. all b'A'"
    contents = ", ".join(f"{chr(value)}: {counts[value]} bytes" for value in found)
    if len(found) > 1:
        raise Failed(f"{name} mixes the contents of {len(found)} uploads ({contents})", expected)
    if foreign:
        raise Failed(f"{name} holds {foreign} bytes that no upload sent (besides {contents or 'nothing'})", expected)
    if got_size != size:
        raise Failed(f"{name} holds {got_size} bytes of upload {contents or '(none)'}, not {size}: cut short", expected)
    if found[0] not in completed:
        raise Failed(f"{name} holds the content of upload {chr(found[0])}, which the server did not complete", expected)
    return (
        f"{CLIENTS} uploads to {name} at the same time ({len(completed)} completed) left exactly one of them: "
        f"all {size} bytes of upload {chr(found[0])}"
    )


# --- running the suite -------------------------------------------------------------------


def reproduce(target: Target, case: Case) -> str:
    """The command that runs ``case`` alone against the same server."""
    workers = target.workers if target.workers != DEFAULT_WORKERS else None
    return shlex.join(
        conformance_command(host=target.host, port=target.port, protocol=target.protocol, workers=workers,
                            only=[case.id])
    )  # fmt: skip


def result(target: Target, case: Case, passed: bool, skipped: bool, detail: str, transcript: str = "") -> dict:
    """One case's line of the report (``--json`` prints it as it is)."""
    return {
        "id": case.id, "category": case.category, "points": case.points, "passed": passed, "skipped": skipped,
        "detail": detail, "transcript": transcript, "reproduce": reproduce(target, case),
    }  # fmt: skip


def run_case(target: Target, case: Case, deadline: float) -> dict:
    check = Check(target, deadline, case.patience)
    try:
        detail = case.run(check)
    except Failed as exc:
        return result(target, case, False, False, exc.detail, check.transcript.render(exc.expected, exc.focus))
    except Exception as exc:  # a socket error outside any step, or a bug in this suite
        return result(target, case, False, False, f"the case stopped: {describe(exc)}", check.transcript.render())
    return result(target, case, True, False, detail)


def run_cases(
    target: Target, cases: list[Case], chosen: set[str], timeout: float, report: Callable[[dict], None]
) -> list[dict]:
    """Run the ``chosen`` of ``cases`` in order, within ``timeout`` seconds in all; ``report`` each result.

    Once the gate has failed, every case after it is reported skipped, chosen
    or not: a report of a server that does not listen lists the whole suite.
    """
    run_deadline = time.monotonic() + timeout
    results: list[dict] = []
    gate_failed = False
    for case in cases:
        if gate_failed:
            line = result(target, case, False, True, f"skipped: {GATE} failed, the server does not accept connections")
        elif case.id not in chosen:
            continue
        elif time.monotonic() >= run_deadline:
            line = result(target, case, False, False, f"not run: the run's --timeout of {timeout:g} s was used up")
        else:
            line = run_case(target, case, min(time.monotonic() + case.seconds, run_deadline))
        gate_failed = gate_failed or (case.id == GATE and not line["passed"])
        report(line)
        results.append(line)
    return results


def print_json(line: dict) -> None:
    print(json.dumps(line), flush=True)


def print_row(line: dict) -> None:
    """One case as a row of a table; a failure with its transcript and the command that replays it."""
    status = "SKIP" if line["skipped"] else "PASS" if line["passed"] else "FAIL"
    earned = line["points"] if line["passed"] else 0
    print(f"{status}  {line['id']:<28} {earned}/{line['points']}  {line['detail']}", flush=True)
    if status == "FAIL":
        for text in line["transcript"].splitlines():
            print(f"        {text}")
        print(f"        reproduce: {line['reproduce']}", flush=True)


def print_summary(results: list[dict]) -> None:
    passed = [line for line in results if line["passed"]]
    skipped = [line for line in results if line["skipped"]]
    earned = sum(line["points"] for line in passed)
    total = sum(line["points"] for line in results)
    failed = len(results) - len(passed) - len(skipped)
    print(f"{len(passed)} passed, {failed} failed, {len(skipped)} skipped: {earned} of {total} points")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.conformance",
        description="Conformance suite: checks that a file server speaks the lab's protocol and survives its clients.",
        epilog="cases (points, protocols):\n"
        + "\n".join(f"  {case.id:<28} {case.points}  {', '.join(case.protocols)}" for case in all_cases()),
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the list of cases as it is
    )
    parser.add_argument("--host", default=SERVER_NODE, help=f"server address (default {SERVER_NODE})")
    parser.add_argument("--port", type=int, help="server port (default 8889, or 6666 with --protocol json)")
    parser.add_argument("--protocol", choices=["stream", "json"], default="stream", help="default stream")
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS,
        help=f"the server's worker count: robust.idle-connections opens that many + 2 silent connections "
        f"(default {DEFAULT_WORKERS})",
    )  # fmt: skip
    parser.add_argument(
        "--only", nargs="+", action="extend", metavar="ID",
        help=f"run only these cases (repeatable); if {GATE} fails, every case is listed, skipped",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT,
        help=f"seconds for the whole run (default {DEFAULT_TIMEOUT:g}); each case also has its own limit",
    )  # fmt: skip
    parser.add_argument(
        "--json", dest="json_output", action="store_true", help="print one JSON object per case and line, no table"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.workers < 0:
        parser.error("--workers must not be negative")
    if args.port is not None and not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    cases = [case for case in all_cases() if args.protocol in case.protocols]
    known = [case.id for case in cases]
    unknown = [name for name in args.only or [] if name not in known]
    if unknown:
        parser.error(f"--only: no case {', '.join(unknown)} for the {args.protocol} protocol; its cases: "
                     + ", ".join(known))  # fmt: skip
    chosen = set(args.only or known)
    target = Target(args.host, args.port or PROTOCOL_PORTS[args.protocol], args.protocol, args.workers)
    if not args.json_output:
        print(f"{target.host}:{target.port}, {target.protocol} protocol: {len(chosen)} of {len(cases)} cases")
    results = run_cases(target, cases, chosen, args.timeout, print_json if args.json_output else print_row)
    if not args.json_output:
        print_summary(results)
    return 0 if all(line["passed"] or line["skipped"] for line in results) else 1


if __name__ == "__main__":
    sys.exit(main())
