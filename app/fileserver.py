"""Concurrent TCP file server: a thread pool or a pool of processes.

    python -m app.fileserver --pool thread  --workers 5 --port 8889 --storage /srv/files
    python -m app.fileserver --pool process --workers 5 --outcomes /results/server.csv
    python -m app.fileserver --json-port 6666     # also speak the course's JSON protocol

It serves one folder of files over two protocols, with one pool of workers:

* the "streaming dialect" of ``app/protocol.py`` on ``--port`` (8889): one
  request per connection;
* the course's JSON protocol of ``app/json_protocol.py`` on ``--json-port``
  (6666 in the lab; 0, the default, turns it off): any number of requests
  per connection.

What it does differently from the course's originals, and why:

* uploads are decoded while they arrive, in 1 MiB pieces, and JSON downloads
  are encoded while they are sent: memory per worker does not grow with the
  file's size;
* an upload is written to a hidden temporary file and renamed into place
  only when complete and intact, so nobody ever sees a partial file, and
  concurrent uploads of one name never mix (the last complete one wins);
* every socket has a timeout, and a request's header must arrive within it,
  so neither a silent client nor one that trickles its header a byte at a
  time can hold a worker;
* bad input gets an ``ERROR`` answer, and the server reads and throws away
  what the client is still sending (briefly, boundedly) before it closes, so
  the client sees the answer instead of a connection reset;
* every request's outcome (ok/error, bytes, seconds) is appended to a CSV
  file, so "server workers succeeded/failed" is measured, not guessed.

Pool modes:

* ``thread``: the main thread waits on both listening sockets (``selectors``)
  and hands each accepted connection to a ``ThreadPoolExecutor`` of N
  threads; extra connections wait in its queue.
* ``process``: N pre-forked worker processes each wait on both listening
  sockets and accept one connection at a time (the course author's final
  design); extra connections wait in the kernel's backlog. When several
  workers wake for one connection, one gets it and the others wait again.

A JSON connection holds its worker until the client closes it or stays idle
for ``--timeout`` seconds, like the course's reference server.
"""

from __future__ import annotations

import argparse
import binascii
import logging
import multiprocessing
import os
import resource
import selectors
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from app import json_protocol, protocol
from app.background_writer import BackgroundWriter
from app.base64_stream import Base64Error, Base64StreamDecoder
from app.csvlog import CsvLog

CHUNK = 1 << 20  # bytes per recv(): large reads keep per-call overhead low
GET_CHUNK = 3 * 256 * 1024  # JSON GET: file bytes per piece; a multiple of 3, so no padding between pieces
BACKLOG = 1024  # pending connections the kernel keeps while all workers are busy
TEMP_PREFIX = ".upload-"  # hidden: check_filename() refuses names starting with "."
LINGER_SECONDS = 1.0  # before closing: at most this long draining input the client still sends
LINGER_BYTES = 4 << 20  # ... and at most this many bytes
MAX_JSON_REQUESTS = 1000  # requests on one JSON connection; then the server closes it
IDLE_POLL = 1.0  # seconds between looks at the stop flag while a JSON connection idles

OUTCOME_FIELDS = [
    "start", "end", "seconds", "worker", "peer", "peer_port", "command",
    "filename", "bytes", "wire_bytes", "status", "error", "sha256", "peak_rss_kib",
]  # fmt: skip

log = logging.getLogger("fileserver")


class StorageError(protocol.ProtocolError):
    """Storing failed on the server's side (disk full, permissions): the client is told so."""

    def __init__(self, exc: OSError) -> None:
        super().__init__(f"Server storage error: {exc.strerror or exc}")


class StorageWriter(BackgroundWriter):
    """A BackgroundWriter whose disk errors are reported as StorageError, not as network errors."""

    def write(self, piece: bytes) -> None:
        try:
            super().write(piece)
        except OSError as exc:
            raise StorageError(exc) from None

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            raise StorageError(exc) from None


class ClientGone(Exception):
    """The client closed the connection before the request was complete."""


class Storage:
    """The folder of stored files, with atomic replacement of uploads."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def path(self, name: str) -> str:
        # `name` has passed protocol.check_filename(): a plain name, no separators.
        return os.path.join(self.root, name)

    def new_temp(self) -> tuple[int, str]:
        """A fresh hidden file in the same folder, so os.replace() is atomic."""
        return tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".part", dir=self.root)

    @contextmanager
    def incoming(self, name: str) -> Iterator[BinaryIO]:
        """Write a new version of ``name``; it becomes visible only if the block succeeds.

        The bytes go to a hidden temporary file in the same folder, renamed
        over ``name`` in one atomic step at the end of the ``with`` block. If
        the block raises (client gone, bad data, checksum mismatch), the
        temporary file is removed and the previous version stays as it was.
        """
        try:
            fd, temp_path = self.new_temp()
        except OSError as exc:
            raise StorageError(exc) from None
        try:
            with open(fd, "wb", buffering=0) as out:
                yield out  # type: ignore[misc]
            try:
                os.chmod(temp_path, 0o644)  # mkstemp() creates 0600; stored files are for everyone to read
                os.replace(temp_path, self.path(name))
            except OSError as exc:
                raise StorageError(exc) from None
        except BaseException:
            os.unlink(temp_path)
            raise

    def open_file(self, name: str) -> BinaryIO:
        """Open a stored file for reading, or raise ProtocolError("File not found")."""
        try:
            # The open descriptor keeps this version of the file even if an upload
            # replaces the name meanwhile: a download is never a mix of two versions.
            return open(self.path(name), "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise protocol.ProtocolError("File not found") from None

    def delete(self, name: str) -> None:
        """Remove a stored file, or raise ProtocolError."""
        try:
            os.unlink(self.path(name))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise protocol.ProtocolError("File not found") from None
        except PermissionError:
            raise protocol.ProtocolError("Permission denied") from None

    def names(self) -> list[str]:
        """The stored files' names, sorted; temporary uploads and unusable names left out."""
        names = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        names.append(protocol.check_filename(entry.name))
                except protocol.ProtocolError:
                    pass  # a hidden temporary upload, or a name no request could ask for
        return sorted(names)

    def sweep_temp(self) -> int:
        """Remove temporary files left by a previous server that was killed."""
        removed = 0
        for entry in os.scandir(self.root):
            if entry.name.startswith(TEMP_PREFIX) and entry.is_file():
                os.unlink(entry.path)
                removed += 1
        return removed


@dataclass
class ServerContext:
    """What every worker needs: where files live, how long to wait, where to log."""

    storage: Storage
    outcomes: CsvLog | None
    timeout: float
    stopping: threading.Event = field(default_factory=threading.Event)  # thread pool: shutting down


# --- the outcome log ---------------------------------------------------------


def new_outcome(peer: tuple[str, int]) -> dict[str, object]:
    """The outcome row of a request, failed until it succeeds."""
    worker = f"{multiprocessing.current_process().name}/{threading.current_thread().name}"
    return {"peer": peer[0], "peer_port": peer[1], "status": "error", "worker": worker}


def record_outcome(ctx: ServerContext, outcome: dict[str, object], started: float, clock: float, wire: int) -> None:
    """Append one request's row to the outcome CSV and log one line."""
    seconds = time.perf_counter() - clock
    outcome.update(start=f"{started:.6f}", end=f"{started + seconds:.6f}", seconds=f"{seconds:.6f}")
    outcome["wire_bytes"] = wire
    # Peak memory of the process serving (in process mode: this worker; in
    # thread mode: the whole server), to show it does not grow with file size.
    outcome["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if ctx.outcomes:
        ctx.outcomes.write(outcome)
    log.info(
        "%s %s from %s:%s %s%s %.3fs",
        outcome.get("command", "-"), outcome.get("filename", "-"), outcome["peer"], outcome["peer_port"],
        outcome["status"], f" ({outcome['error']})" if outcome.get("error") else "", seconds,
    )  # fmt: skip


# --- the streaming dialect (port 8889) -----------------------------------------


def read_header(conn: socket.socket, timeout: float) -> tuple[bytes, bytes] | None:
    """Receive up to the blank line. None if the peer closed without a byte.

    The whole header must arrive within ``timeout`` seconds: a client that
    trickles it a byte at a time cannot hold a worker longer than a silent one.
    """
    deadline = time.monotonic() + timeout
    buffer = b""
    try:
        while True:  # bounded: at most MAX_HEADER_BYTES + 4 bytes, all within `timeout`
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("header not complete in time")
            conn.settimeout(remaining)
            data = conn.recv(65536)
            if not data:
                if not buffer:
                    return None  # a port probe or health check, not a request
                raise ClientGone("connection closed before the end of the header")
            buffer += data
            parts = protocol.split_header(buffer)
            if parts is not None:
                return parts
    finally:
        conn.settimeout(timeout)


def decode_piece(decoder: Base64StreamDecoder, piece: bytes | memoryview | None) -> bytes:
    """Decode the next piece of an upload (None: the end); bad base64 is the client's error."""
    try:
        return decoder.feed(piece) if piece is not None else decoder.finish()
    except Base64Error:
        raise protocol.ProtocolError("Invalid Base64 data stream") from None


def receive_upload(conn: socket.socket, request: protocol.Request, early: bytes, storage: Storage) -> tuple[int, str]:
    """Receive, decode and store one upload. Returns (decoded bytes, sha256)."""
    assert request.size is not None
    conn.sendall(protocol.READY)
    decoder = Base64StreamDecoder()
    stored = 0
    remaining = request.size
    with storage.incoming(request.filename) as out, StorageWriter(out) as writer:
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        pending = early[:remaining]  # payload that came in the header's segment
        while True:
            if pending:
                # Hot loop: one recv_into a reused buffer and one C-level decode
                # per MiB; hashing and writing happen on the writer's thread
                # meanwhile. Nothing here is per-byte Python work.
                decoded = decode_piece(decoder, pending)
                writer.write(decoded)
                stored += len(decoded)
                remaining -= len(pending)
            if not remaining:
                break
            received = conn.recv_into(view, min(CHUNK, remaining))
            if not received:
                raise ClientGone(f"connection closed after {request.size - remaining} of {request.size} base64 bytes")
            pending = view[:received]
        decode_piece(decoder, None)
        # More than the declared size means the size or the data is wrong: store neither.
        # (Only what has already arrived can be seen; trailing blanks are tolerated.)
        if early[request.size :].strip() or _peek(conn, 64).strip():
            raise protocol.ProtocolError("Size mismatch: more data than declared")
        writer.close()
        digest = writer.hexdigest()
        if request.sha256 and request.sha256 != digest:
            raise protocol.ProtocolError("Checksum mismatch")
    conn.sendall(protocol.UPLOAD_COMPLETE)
    return stored, digest


def send_file(conn: socket.socket, request: protocol.Request, storage: Storage) -> int:
    """Send ``OK <size>`` and the file's raw bytes. Returns the bytes sent."""
    with storage.open_file(request.filename) as file:
        size = os.fstat(file.fileno()).st_size
        conn.sendall(protocol.size_reply(size))
        # sendfile(): the kernel copies page cache to the socket, no Python loop.
        sent = conn.sendfile(file, 0, size)
    if sent != size:
        raise ClientGone(f"connection closed after {sent} of {size} bytes")
    return sent


def handle_connection(conn: socket.socket, peer: tuple[str, int], ctx: ServerContext) -> None:
    """Serve one streaming-dialect request on ``conn`` and record its outcome."""
    started = time.time()
    clock = time.perf_counter()
    outcome: dict[str, object] | None = new_outcome(peer)
    wire = 0
    header_done = False
    try:
        conn.settimeout(ctx.timeout)
        parts = read_header(conn, ctx.timeout)
        if parts is None:
            outcome = None
            return
        header, early = parts
        header_done = True
        wire = len(header) + len(protocol.TERMINATOR)
        request = protocol.parse_request(header)
        outcome.update(command=request.command, filename=request.filename)
        if request.command == "UPLOAD":
            stored, digest = receive_upload(conn, request, early, ctx.storage)
            outcome.update(bytes=stored, sha256=digest)
            wire += request.size or 0
        else:
            sent = send_file(conn, request, ctx.storage)
            outcome["bytes"] = sent
            wire += sent
        outcome["status"] = "ok"
    except (protocol.ProtocolError, ClientGone, OSError) as exc:
        assert outcome is not None
        outcome["error"], answer = describe_failure(exc, ctx, header_done)
        if answer:
            _try_send(conn, protocol.error_reply(answer))
    except Exception as exc:  # a bug must cost one request, not the worker
        log.exception("internal error serving %s:%s", *peer)
        if outcome is not None:
            outcome["error"] = f"internal error: {type(exc).__name__}: {exc}"
        _try_send(conn, protocol.error_reply("Internal server error"))
    finally:
        if outcome is not None:
            record_outcome(ctx, outcome, started, clock, wire)
        _close(conn)  # after the row is written: a client that sees the close can read it


def describe_failure(exc: Exception, ctx: ServerContext, request_done: bool) -> tuple[str, str | None]:
    """(the outcome row's error text, the message to answer with, or None when no answer is possible)."""
    if isinstance(exc, protocol.ProtocolError):
        return str(exc), str(exc)
    if isinstance(exc, TimeoutError):
        return _timeout_text(ctx, request_done), "Timeout waiting for client"
    if isinstance(exc, ClientGone):
        return str(exc), None
    assert isinstance(exc, OSError)
    return f"connection error: {exc.strerror or exc}", None


def _timeout_text(ctx: ServerContext, request_done: bool) -> str:
    if request_done:
        return f"timeout: client idle for {ctx.timeout:g}s"
    return f"timeout: no complete request within {ctx.timeout:g}s"


# --- the course's JSON protocol (port 6666) -------------------------------------


class JsonSession:
    """One connection of the JSON protocol: requests one after another.

    The framing rules (where a request ends, bare commands, when the
    connection closes after an error) are in ``app/json_protocol.py``.
    """

    def __init__(self, conn: socket.socket, peer: tuple[str, int], ctx: ServerContext) -> None:
        self.conn = conn
        self.peer = peer
        self.ctx = ctx
        self.pending = b""  # bytes that came after the previous request: the next one's start
        self.served = 0  # requests handled on this connection
        self.client_done = False  # the client has closed its side
        # Per request (reset by serve_one):
        self.started = time.time()
        self.clock = time.perf_counter()
        self.received = 0  # bytes of the request
        self.sent = 0  # bytes of the answer
        self.words_read = False  # the request's words have come (an UPLOAD's base64 may follow)
        self.in_sync = False  # the request was read to its end: the next one can follow
        self.answering = False  # part of the answer is sent: an error can no longer be answered

    def run(self) -> None:
        for _ in range(MAX_JSON_REQUESTS):
            if not self.serve_one():
                return
        log.info("closing a JSON connection from %s:%s after %d requests", *self.peer, MAX_JSON_REQUESTS)

    def serve_one(self) -> bool:
        """Read, answer and record one request. False: the connection must close."""
        outcome: dict[str, object] | None = new_outcome(self.peer)
        outcome["command"] = "JSON"
        self.received = self.sent = 0
        self.words_read = self.in_sync = self.answering = False
        keep_open = False
        try:
            framed = self.read_request()
            if framed is None:
                outcome = None  # the client closed, or went quiet after its last request
            else:
                self.serve(framed, outcome)
                outcome["status"] = "ok"
                keep_open = True
        except (protocol.ProtocolError, ClientGone, OSError) as exc:
            assert outcome is not None
            outcome["error"], answer = describe_failure(exc, self.ctx, self.words_read)
            if answer:
                self.try_answer(json_protocol.error_answer(answer))
            # After a well-formed request that failed (say, File not found) the
            # connection can go on; after broken framing or a timeout it cannot.
            keep_open = isinstance(exc, protocol.ProtocolError) and self.in_sync
        except Exception as exc:  # a bug must cost one request, not the worker
            log.exception("internal error serving %s:%s", *self.peer)
            if outcome is not None:
                outcome["error"] = f"internal error: {type(exc).__name__}: {exc}"
            self.try_answer(json_protocol.error_answer("Internal server error"))
        finally:
            if outcome is not None:
                self.served += 1
                record_outcome(self.ctx, outcome, self.started, self.clock, self.received + self.sent)
        return keep_open and not self.client_done

    def serve(self, framed: tuple[json_protocol.Complete | json_protocol.UploadHead, bytes], outcome: dict) -> None:
        """Carry out one framed request and send its answer."""
        request, buffer = framed
        storage = self.ctx.storage
        if isinstance(request, json_protocol.UploadHead):
            outcome["command"] = "JSON-UPLOAD"
            name = protocol.check_filename(request.filename)
            outcome["filename"] = name
            stored, digest = self.receive_upload(name, buffer[request.body :])
            outcome.update(bytes=stored, sha256=digest)
            self.send(json_protocol.ok_answer(f"{name} stored ({stored} bytes)", sha256=digest))
            return
        outcome["command"] = json_protocol.command_of(request.text)
        parsed = json_protocol.parse_request(request.text)
        if parsed.filename:
            outcome["filename"] = parsed.filename
        if parsed.command == "LIST":
            self.send(json_protocol.ok_answer(storage.names()))
        elif parsed.command == "GET":
            assert parsed.filename is not None
            outcome["bytes"] = self.send_file(parsed.filename)
        else:
            assert parsed.filename is not None
            storage.delete(parsed.filename)
            self.send(json_protocol.ok_answer(f"{parsed.filename} deleted"))

    def read_request(self) -> tuple[json_protocol.Complete | json_protocol.UploadHead, bytes] | None:
        """Wait for the next request; return it framed, with the buffer it was found in.

        None when there is no next request: the client closed, or stayed
        quiet for the idle timeout after an answered request (or while the
        server shuts down). All the words of a request must come within the
        idle timeout of its first byte.
        """
        buffer, self.pending = self.pending, b""
        if buffer and self.served:  # the request came right after the previous one
            self.started, self.clock = time.time(), time.perf_counter()
        now = time.monotonic()
        idle_until = now + self.ctx.timeout
        deadline = now + self.ctx.timeout if buffer else None  # set by the request's first byte
        try:
            while True:  # bounded: at most 8 KiB of words, all within the timeout
                framed = json_protocol.frame_request(buffer)
                if isinstance(framed, json_protocol.UploadHead):
                    self.received += framed.body
                    self.words_read = True
                    return framed, buffer
                if isinstance(framed, json_protocol.Complete):
                    return self._complete(framed, buffer)
                wait = (deadline if deadline is not None else idle_until) - time.monotonic()
                if framed.bare:
                    wait = min(wait, json_protocol.BARE_COMMAND_QUIET)
                if deadline is None:
                    wait = min(wait, IDLE_POLL)
                try:
                    if wait <= 0:
                        raise TimeoutError
                    self.conn.settimeout(wait)
                    data = self.conn.recv(65536)
                except TimeoutError:
                    if framed.bare:
                        return self._complete(json_protocol.bare_request(buffer), buffer)
                    idle = deadline is None and json_protocol.is_blank(buffer)
                    if idle and self.ctx.stopping.is_set():
                        return None
                    if idle and time.monotonic() < idle_until:
                        continue  # only a look at the stop flag: keep waiting
                    if json_protocol.is_blank(buffer) and self.served:
                        return None
                    raise
                if not data:
                    self.client_done = True
                    if framed.bare:  # a bare command, then the client closed its side
                        return self._complete(json_protocol.bare_request(buffer), buffer)
                    if json_protocol.is_blank(buffer):
                        return None
                    raise ClientGone("connection closed in the middle of a request")
                if deadline is None:
                    deadline = time.monotonic() + self.ctx.timeout
                if self.served and json_protocol.is_blank(buffer):
                    # The request's clock starts at its first byte (the first request's at the accept).
                    self.started, self.clock = time.time(), time.perf_counter()
                buffer += data
        finally:
            self.conn.settimeout(self.ctx.timeout)

    def _complete(self, framed: json_protocol.Complete, buffer: bytes) -> tuple[json_protocol.Complete, bytes]:
        self.pending = buffer[framed.rest :]
        self.received += framed.rest
        self.words_read = self.in_sync = True
        return framed, buffer

    def receive_upload(self, name: str, body: bytes) -> tuple[int, str]:
        """Decode and store an UPLOAD's base64 up to the terminator. Returns (bytes, sha256).

        ``body`` is the part of the base64 that came with the request's words.
        """
        scanner = json_protocol.TerminatorScanner()
        decoder = Base64StreamDecoder()
        stored = 0
        with self.ctx.storage.incoming(name) as out, StorageWriter(out) as writer:
            chunk = bytearray(CHUNK)
            view = memoryview(chunk)
            data: bytes | bytearray = body
            end = len(body)
            while True:  # bounded: every round receives at least one byte within the idle timeout
                pieces, after = scanner.feed(data, end)
                for piece in pieces:
                    # Hot loop: a C-level search and decode per received MiB; hashing
                    # and writing happen on the writer's thread meanwhile.
                    decoded = decode_piece(decoder, piece)
                    writer.write(decoded)
                    stored += len(decoded)
                if after is not None:
                    self.received += after
                    self.pending = bytes(data[after:end])  # the next request may have started
                    self.in_sync = True
                    break
                self.received += end
                end = self.conn.recv_into(view, CHUNK)
                if not end:
                    self.client_done = True
                    raise ClientGone(f"connection closed after {stored} bytes, before the end of the upload")
                data = chunk
            decode_piece(decoder, None)
            writer.close()
        return stored, writer.hexdigest()

    def send_file(self, name: str) -> int:
        """Send a GET answer, the file's base64 encoded piece by piece. Returns the file's size."""
        with self.ctx.storage.open_file(name) as file:
            size = os.fstat(file.fileno()).st_size
            self.send(json_protocol.get_answer_prefix(name))
            buffer = bytearray(GET_CHUNK)
            view = memoryview(buffer)
            remaining = size
            while remaining:  # bounded: size / GET_CHUNK rounds
                # Hot loop: read into a reused buffer, encode in C, send.
                count = file.readinto(view[: min(GET_CHUNK, remaining)])
                if not count:
                    raise OSError(f"{name} shrank while it was being sent")
                self.send(binascii.b2a_base64(view[:count], newline=False))
                remaining -= count
            self.send(json_protocol.GET_ANSWER_SUFFIX)
        return size

    def send(self, data: bytes) -> None:
        self.answering = True
        self.conn.sendall(data)
        self.sent += len(data)

    def try_answer(self, data: bytes) -> None:
        """Best-effort error answer, unless another answer has already begun."""
        if not self.answering and _try_send(self.conn, data):
            self.sent += len(data)


def handle_json_connection(conn: socket.socket, peer: tuple[str, int], ctx: ServerContext) -> None:
    """Serve JSON-protocol requests on ``conn`` until the client is done; one outcome row each."""
    try:
        conn.settimeout(ctx.timeout)
        JsonSession(conn, peer, ctx).run()
    finally:
        _close(conn)


# --- connection helpers -----------------------------------------------------------


def _try_send(conn: socket.socket, data: bytes) -> bool:
    """Best-effort error answer: the client may already be gone. True if it was sent."""
    try:
        conn.sendall(data)
        return True
    except OSError:
        return False


def _peek(conn: socket.socket, size: int) -> bytes:
    """Up to ``size`` bytes that have arrived and not been read yet, without waiting or consuming."""
    timeout = conn.gettimeout()
    try:
        conn.setblocking(False)
        return conn.recv(size, socket.MSG_PEEK)
    except OSError:  # BlockingIOError: nothing there; anything else: the connection is gone
        return b""
    finally:
        try:
            conn.settimeout(timeout)
        except OSError:
            pass


def _close(conn: socket.socket) -> None:
    """Close ``conn`` so that the client can read the answer.

    Closing a socket with unread input makes the kernel send a reset, and a
    reset can destroy the answer before the client reads it. So when the
    client is still sending (e.g. an upload refused half way), the answer is
    followed by our end-of-stream and the input is read and dropped first,
    for at most LINGER_SECONDS and LINGER_BYTES.
    """
    try:
        if _peek(conn, 1):
            conn.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            drained = 0
            while drained < LINGER_BYTES:  # bounded in bytes and in time
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                conn.settimeout(remaining)
                data = conn.recv(65536)
                if not data:
                    break
                drained += len(data)
    except OSError:
        pass  # timed out or reset: nothing more to wait for
    conn.close()


# --- pools -------------------------------------------------------------------------

Handler = Callable[[socket.socket, tuple[str, int], ServerContext], None]


@dataclass(frozen=True)
class Endpoint:
    """A listening socket and the function that serves its connections."""

    listener: socket.socket
    handler: Handler


class Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to stop accepting."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


def _selector(endpoints: list[Endpoint]) -> selectors.BaseSelector:
    """Wait on every listening socket at once; each key's data is its handler."""
    selector = selectors.DefaultSelector()
    for endpoint in endpoints:
        selector.register(endpoint.listener, selectors.EVENT_READ, endpoint.handler)
    return selector


def _accept(listener: socket.socket) -> tuple[socket.socket, tuple[str, int]] | None:
    """Accept one waiting connection; None if there is none (another worker took it)."""
    try:
        return listener.accept()
    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
        return None
    except OSError as exc:  # e.g. out of file descriptors: pause rather than spin
        log.warning("accept failed: %s", exc.strerror or exc)
        time.sleep(0.1)
        return None


def serve_threads(endpoints: list[Endpoint], workers: int, ctx: ServerContext) -> None:
    """Main thread accepts on every endpoint; a pool of ``workers`` threads serves."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="worker")
    selector = _selector(endpoints)
    try:
        while True:
            for key, _ in selector.select():
                accepted = _accept(key.fileobj)  # type: ignore[arg-type]
                if accepted:
                    pool.submit(key.data, *accepted, ctx)
    except Stop:
        pass
    finally:
        selector.close()
        for endpoint in endpoints:
            endpoint.listener.close()
        ctx.stopping.set()  # idle JSON connections end now, not at their timeout
        # Connections still queued are dropped; transfers under way may finish.
        pool.shutdown(wait=True, cancel_futures=True)


def _process_worker(endpoints: list[Endpoint], ctx: ServerContext) -> None:
    """Body of one pre-forked worker: accept and serve, one connection at a time."""
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    selector = _selector(endpoints)
    try:
        while True:
            for key, _ in selector.select():
                accepted = _accept(key.fileobj)  # type: ignore[arg-type]
                if accepted:
                    key.data(*accepted, ctx)
    except Stop:
        pass
    finally:
        selector.close()


def serve_processes(endpoints: list[Endpoint], workers: int, ctx: ServerContext) -> None:
    """``workers`` forked processes share the listening sockets; the parent supervises."""
    fork = multiprocessing.get_context("fork")  # children inherit the sockets and the log
    children: list[multiprocessing.process.BaseProcess] = []

    def start(index: int) -> multiprocessing.process.BaseProcess:
        child = fork.Process(target=_process_worker, args=(endpoints, ctx), name=f"worker-{index}", daemon=True)
        child.start()
        return child

    try:
        children = [start(i) for i in range(workers)]
        while True:
            # Replace a worker that died (e.g. killed by the OOM killer) so the
            # pool keeps its size; the death itself is logged.
            for index, child in enumerate(children):
                child.join(timeout=0.5 / workers)
                if child.exitcode is not None:
                    log.warning("worker-%d exited with %s; starting a new one", index, child.exitcode)
                    children[index] = start(index)
    except Stop:
        pass
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
        for child in children:
            child.join(timeout=10)
        for endpoint in endpoints:
            endpoint.listener.close()


def open_listener(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(BACKLOG)
    # Non-blocking: accept() only after the selector says a connection waits, and a
    # worker that loses the race for it gets BlockingIOError instead of hanging.
    listener.setblocking(False)
    return listener


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.fileserver", description="Concurrent TCP file server.")
    parser.add_argument("--pool", choices=["thread", "process"], default="thread", help="concurrency model")
    parser.add_argument("--workers", type=int, default=5, help="pool size (default 5)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    parser.add_argument(
        "--port", type=int, default=protocol.STREAM_PORT, help="TCP port of the streaming dialect (default 8889)"
    )
    parser.add_argument(
        "--json-port", type=int, default=0, help="TCP port of the course's JSON protocol, e.g. 6666 (default 0: off)"
    )
    parser.add_argument("--storage", default="files", help="folder of stored files")
    parser.add_argument("--outcomes", help="CSV file to append one row per request to")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a client may stay idle (default 60)")
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.json_port and args.json_port == args.port:
        parser.error("--json-port must differ from --port")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(processName)s/%(threadName)s %(message)s",
    )
    storage = Storage(args.storage)
    swept = storage.sweep_temp()
    if swept:
        log.warning("removed %d partial upload(s) left by an earlier run", swept)
    endpoints = []
    ports = [(args.port, handle_connection)] + ([(args.json_port, handle_json_connection)] if args.json_port else [])
    for port, handler in ports:
        try:
            endpoints.append(Endpoint(open_listener(args.host, port), handler))
        except OSError as exc:
            print(f"fileserver: cannot listen on {args.host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    outcomes = CsvLog(args.outcomes, OUTCOME_FIELDS) if args.outcomes else None
    ctx = ServerContext(storage=storage, outcomes=outcomes, timeout=args.timeout)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    json_note = f" (JSON protocol on port {args.json_port})" if args.json_port else ""
    log.info(
        "serving %s on %s:%d%s with %d %s worker(s)",
        storage.root, args.host, args.port, json_note, args.workers, args.pool,
    )  # fmt: skip
    if args.pool == "thread":
        serve_threads(endpoints, args.workers, ctx)
    else:
        serve_processes(endpoints, args.workers, ctx)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
