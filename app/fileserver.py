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

* a connection costs a worker only while its request is served. Until its
  request header is complete it waits in the *waiting room*, one
  ``selectors`` loop that costs a file descriptor per connection and no
  worker; a JSON connection goes back there between requests. So idle or
  slow clients cannot starve the pool, while N workers still serve at most
  N requests at once (the queueing the experiment measures still shows);
* a request header must be complete within ``--header-timeout`` of its first
  chance, an upload must keep ``--min-upload-rate`` (like Apache's
  ``mod_reqtimeout``), a client silent for ``--timeout`` is cut, and each
  cut is logged with its cause (``header-timeout``, ``body-too-slow``,
  ``idle-timeout``, ``too-many-waiting``);
* uploads are decoded while they arrive, in 1 MiB pieces, and JSON downloads
  are encoded while they are sent: memory per worker does not grow with the
  file's size; an upload larger than ``--max-upload`` is refused;
* an upload is written to a hidden temporary file and renamed into place
  only when complete and intact, so nobody ever sees a partial file, and
  concurrent uploads of one name never mix (the last complete one wins);
* only regular files directly in the storage folder are served: a symbolic
  link is never followed;
* bad input gets an ``ERROR`` answer, and the server reads and throws away
  what the client is still sending (briefly, boundedly) before it closes, so
  the client sees the answer instead of a connection reset;
* every request's outcome (ok/error, bytes, seconds) is appended to a CSV
  file, so "server workers succeeded/failed" is measured, not guessed.

Pool modes (the waiting room runs in the main thread, or the parent process):

* ``thread``: ready requests go to a ``ThreadPoolExecutor`` of N threads;
  extra ones wait in its queue.
* ``process``: N pre-forked worker processes; the parent passes each ready
  connection (its descriptor and the bytes read so far) to an idle worker
  over a Unix socket, and extra ones wait in the parent's queue. A worker
  that dies is replaced, and its unfinished upload's temporary file removed.
"""

from __future__ import annotations

import argparse
import binascii
import errno
import functools
import logging
import multiprocessing
import os
import pickle
import queue
import resource
import selectors
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from app import json_protocol, protocol
from app.background_writer import BackgroundWriter
from app.base64_stream import Base64Error, Base64StreamDecoder
from app.csvlog import CsvLog
from app.sizes import format_size, parse_size

CHUNK = 1 << 20  # bytes per recv(): large reads keep per-call overhead low
GET_CHUNK = 3 * 256 * 1024  # JSON GET: file bytes per piece; a multiple of 3, so no padding between pieces
BACKLOG = 1024  # connections the kernel keeps until the waiting room accepts them
TEMP_PREFIX = ".upload-"  # hidden: check_filename() refuses names starting with "."
LINGER_SECONDS = 1.0  # before closing: at most this long draining input the client still sends
LINGER_BYTES = 4 << 20  # ... and at most this many bytes
MAX_JSON_REQUESTS = 1000  # requests on one JSON connection; then the server closes it
FD_RESERVE = 256  # descriptors kept for files, logs, workers and queued connections besides the waiting room
HANDOVER_MAX = 1 << 16  # process pool: largest message between parent and worker (a Ready is at most ~8 KiB)
WORKER_DONE = b"."  # process pool: a worker's "I am idle again"

STREAM, JSON = "stream", "json"  # the two protocols, as a connection's kind
Kind = Literal["stream", "json"]

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


class Cut(Exception):
    """The server gives up on a client that is too slow or silent.

    ``cause`` is the outcome log's one-word reason (``header-timeout``,
    ``body-too-slow``, ``idle-timeout``, ``too-many-waiting``), ``answer``
    the ``ERROR`` message for the client.
    """

    def __init__(self, cause: str, detail: str, answer: str = "Timeout waiting for client") -> None:
        super().__init__(f"{cause}: {detail}")
        self.cause = cause
        self.answer = answer


# Files that are not regular files, or are symbolic links (O_NOFOLLOW), are "not found".
_NOT_FOUND_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENXIO}


class Storage:
    """The folder of stored files, with atomic replacement of uploads."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    def path(self, name: str) -> str:
        # `name` has passed protocol.check_filename(): a plain name, no separators.
        return os.path.join(self.root, name)

    def new_temp(self) -> tuple[int, str]:
        """A fresh hidden file in the same folder, so os.replace() is atomic.

        Its name carries this process's id (``.upload-<pid>-<random>.part``),
        so the files of a worker process that is killed can be found and removed.
        """
        return tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", suffix=".part", dir=self.root)

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
                    # Once per upload, not per chunk: the bytes reach the disk before the
                    # rename does, so a crash never replaces the previous version with an
                    # empty or partial file.
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise StorageError(exc) from None
            try:
                os.chmod(temp_path, 0o644)  # mkstemp() creates 0600; stored files are for everyone to read
                os.replace(temp_path, self.path(name))  # replaces a symbolic link itself, never its target
            except OSError as exc:
                raise StorageError(exc) from None
        except BaseException:
            os.unlink(temp_path)
            raise

    def open_file(self, name: str) -> BinaryIO:
        """Open a stored regular file for reading, or raise ProtocolError("File not found").

        A symbolic link is not followed (``O_NOFOLLOW``) and anything but a
        regular file is refused, so a GET can only read what LIST shows, never
        a file outside the folder that a link points to. (``O_NONBLOCK`` keeps
        a named pipe from blocking the open; it changes nothing for a file.)
        """
        try:
            fd = os.open(self.path(name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in _NOT_FOUND_ERRNOS:
                raise protocol.ProtocolError("File not found") from None
            raise StorageError(exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise protocol.ProtocolError("File not found")
        # The open descriptor keeps this version of the file even if an upload
        # replaces the name meanwhile: a download is never a mix of two versions.
        return open(fd, "rb")

    def delete(self, name: str) -> None:
        """Remove a stored regular file, or raise ProtocolError."""
        path = self.path(name)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise protocol.ProtocolError("File not found")  # LIST does not show it either
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            raise protocol.ProtocolError("File not found") from None
        except PermissionError:
            raise protocol.ProtocolError("Permission denied") from None
        except OSError as exc:  # read-only or failing disk: the client is told, not left without an answer
            raise StorageError(exc) from None

    def names(self) -> list[str]:
        """The stored files' names, sorted; temporary uploads, links and unusable names left out."""
        names = []
        try:
            with os.scandir(self.root) as entries:
                for entry in entries:
                    try:
                        if entry.is_file(follow_symlinks=False):
                            names.append(protocol.check_filename(entry.name))
                    except protocol.ProtocolError:
                        pass  # a hidden temporary upload, or a name no request could ask for
        except OSError as exc:  # the folder is gone or unreadable: the client is told
            raise StorageError(exc) from None
        return sorted(names)

    def sweep_temp(self, pid: int | None = None) -> int:
        """Remove temporary uploads of process ``pid`` (None: of anyone), left when it was killed."""
        prefix = TEMP_PREFIX if pid is None else f"{TEMP_PREFIX}{pid}-"
        removed = 0
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
        return removed


@dataclass(frozen=True)
class Limits:
    """How long, and how slowly, a client may keep the server waiting (see ``--help``)."""

    idle: float = 60.0  # --timeout: silence allowed in a transfer, and between JSON requests
    header: float = 10.0  # --header-timeout: a request header must be whole this soon (never beyond `idle`)
    min_upload_rate: int = 64 * 1024  # --min-upload-rate: bytes/s an upload must bring per window; 0: off
    rate_window: float = 2.0  # --rate-window: seconds over which that rate is averaged
    max_upload: int = 1 << 30  # --max-upload: largest upload, in file bytes
    max_waiting: int = 1000  # --max-waiting: connections in the waiting room at most

    @property
    def header_deadline(self) -> float:
        return min(self.header, self.idle)


@dataclass
class ServerContext:
    """What every worker needs: where files live, how long to wait, where to log."""

    storage: Storage
    outcomes: CsvLog | None
    limits: Limits


# --- the outcome log ---------------------------------------------------------


def new_outcome(peer: tuple[str, int]) -> dict[str, object]:
    """The outcome row of a request, failed until it succeeds."""
    worker = f"{multiprocessing.current_process().name}/{threading.current_thread().name}"
    return {"peer": peer[0], "peer_port": peer[1], "status": "error", "worker": worker}


_outcome_errors_seen: set[int | None] = set()  # errnos already reported by record_outcome


def record_outcome(ctx: ServerContext, outcome: dict[str, object], started: float, clock: float, wire: int) -> None:
    """Append one request's row to the outcome CSV and log one line."""
    seconds = time.perf_counter() - clock
    outcome.update(start=f"{started:.6f}", end=f"{started + seconds:.6f}", seconds=f"{seconds:.6f}")
    outcome["wire_bytes"] = wire
    # Peak memory of the process serving (in process mode: this worker; in
    # thread mode: the whole server), to show it does not grow with file size.
    outcome["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if ctx.outcomes:
        try:
            ctx.outcomes.write(outcome)
        except OSError as exc:
            # A full or broken disk costs the log its rows, never a client its
            # connection or the server its life: warn once per kind of error.
            if exc.errno not in _outcome_errors_seen:
                _outcome_errors_seen.add(exc.errno)
                log.error("cannot write the outcome log %s: %s", ctx.outcomes.path, exc.strerror or exc)
    log.info(
        "%s %s from %s:%s %s%s %.3fs",
        outcome.get("command", "-"), outcome.get("filename", "-"), outcome["peer"], outcome["peer_port"],
        outcome["status"], f" ({outcome['error']})" if outcome.get("error") else "", seconds,
    )  # fmt: skip


def describe_failure(exc: Exception, ctx: ServerContext) -> tuple[str, str | None]:
    """(the outcome row's error text, the message to answer with, or None when no answer is possible)."""
    if isinstance(exc, protocol.ProtocolError):
        return str(exc), str(exc)
    if isinstance(exc, Cut):
        return str(exc), exc.answer
    if isinstance(exc, TimeoutError):  # a worker's send or receive: the client stopped moving
        return f"idle-timeout: client idle for {ctx.limits.idle:g}s", "Timeout waiting for client"
    if isinstance(exc, ClientGone):
        return str(exc), None
    assert isinstance(exc, OSError)
    return f"connection error: {exc.strerror or exc}", None


def too_large(limits: Limits) -> protocol.ProtocolError:
    return protocol.ProtocolError(f"File too large: the limit is {format_size(limits.max_upload)}")


# --- what a worker is handed ------------------------------------------------------


@dataclass
class Ready:
    """A connection's state when it passes between the waiting room and a worker.

    ``buffer`` is everything received and not yet used: the request header
    (and any body bytes that came with it), or, for a JSON connection, the
    start of its next request.
    """

    kind: Kind
    peer: tuple[str, int]
    buffer: bytes = b""
    bare: bool = False  # JSON: the buffer is a bare command whose quiet period has passed
    client_done: bool = False  # the client closed its side after sending the buffer
    served: int = 0  # JSON: requests already served on this connection


class PacedReceiver:
    """``recv_into`` for an upload's body that cuts a client slower than the minimum rate.

    Like Apache's ``mod_reqtimeout`` ``MinRate``: every ``rate_window``
    seconds, counted from the start of the body, must bring at least
    ``min_upload_rate * rate_window`` bytes, or the upload is cut
    (``body-too-slow``). The per-receive idle timeout alone cannot do this:
    a client that sends one byte every few seconds never lets it fire, and
    holds a worker for as long as it likes. The first window is the grace
    period for the client's start.
    """

    def __init__(self, conn: socket.socket, limits: Limits) -> None:
        self.conn = conn
        self.idle = limits.idle
        self.window = limits.rate_window
        self.rate = limits.min_upload_rate
        self.need = int(limits.min_upload_rate * limits.rate_window)  # bytes per window; 0: no minimum
        self.window_end = time.monotonic() + self.window
        self.got = 0  # bytes in the current window

    def recv_into(self, view: memoryview, size: int) -> int:
        """Receive up to ``size`` bytes (0 at the end of the stream); Cut or TimeoutError when too slow."""
        if not self.need:
            return self.conn.recv_into(view, size)  # the socket's idle timeout still applies
        while True:  # bounded: each round receives, or ends a window (which passes or cuts)
            now = time.monotonic()
            if now >= self.window_end:
                if self.got < self.need:
                    detail = f"{self.got} bytes in {self.window:g}s, under {format_size(self.rate)}/s"
                    raise Cut("body-too-slow", detail)
                self.got = 0
                self.window_end = now + self.window
            # One clock read and one settimeout per receive (per MiB when fast): no per-byte work.
            self.conn.settimeout(min(self.window_end - now, self.idle))
            try:
                received = self.conn.recv_into(view, size)
            except TimeoutError:
                if time.monotonic() < self.window_end:
                    raise  # silent for the whole idle timeout, shorter than the window
                continue  # the window ended: judged above
            self.got += received
            return received


# --- the streaming dialect (port 8889) -----------------------------------------


def receive_upload(conn: socket.socket, request: protocol.Request, early: bytes, ctx: ServerContext) -> tuple[int, str]:
    """Receive, decode and store one upload. Returns (decoded bytes, sha256)."""
    assert request.size is not None
    if request.size > protocol.base64_length(ctx.limits.max_upload):  # more characters than the largest file has
        raise too_large(ctx.limits)  # before the body, not after
    conn.sendall(protocol.READY)
    body = PacedReceiver(conn, ctx.limits)
    decoder = Base64StreamDecoder()
    stored = 0
    remaining = request.size
    with ctx.storage.incoming(request.filename) as out, StorageWriter(out) as writer:
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
            received = body.recv_into(view, min(CHUNK, remaining))
            if not received:
                raise ClientGone(f"connection closed after {request.size - remaining} of {request.size} base64 bytes")
            pending = view[:received]
        decode_piece(decoder, None)
        if stored > ctx.limits.max_upload:  # 1 or 2 bytes over: the base64 length could not tell
            raise too_large(ctx.limits)
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


def decode_piece(decoder: Base64StreamDecoder, piece: bytes | memoryview | None) -> bytes:
    """Decode the next piece of an upload (None: the end); bad base64 is the client's error."""
    try:
        return decoder.feed(piece) if piece is not None else decoder.finish()
    except Base64Error:
        raise protocol.ProtocolError("Invalid Base64 data stream") from None


def send_file(conn: socket.socket, request: protocol.Request, storage: Storage) -> int:
    """Send ``OK <size>`` and the file's raw bytes. Returns the bytes sent."""
    with storage.open_file(request.filename) as file:
        size = os.fstat(file.fileno()).st_size
        conn.sendall(protocol.size_reply(size))
        # sendfile(): the kernel copies page cache to the socket, no Python loop.
        # (It refuses a count of 0, and an empty file has nothing to send.)
        sent = conn.sendfile(file, 0, size) if size else 0
    if sent != size:
        raise ClientGone(f"connection closed after {sent} of {size} bytes")
    return sent


def handle_stream(conn: socket.socket, ready: Ready, ctx: ServerContext) -> None:
    """Serve one streaming-dialect request whose header has arrived, and record its outcome."""
    started = time.time()
    clock = time.perf_counter()
    outcome = new_outcome(ready.peer)
    wire = 0
    try:
        conn.settimeout(ctx.limits.idle)
        parts = protocol.split_header(ready.buffer)  # ProtocolError: too large
        if parts is None:  # the waiting room hands over an unfinished header only when the client left
            raise ClientGone("connection closed before the end of the header")
        header, early = parts
        wire = len(header) + len(protocol.TERMINATOR)
        request = protocol.parse_request(header)
        outcome.update(command=request.command, filename=request.filename)
        if request.command == "UPLOAD":
            stored, digest = receive_upload(conn, request, early, ctx)
            outcome.update(bytes=stored, sha256=digest)
            wire += request.size or 0
        else:
            sent = send_file(conn, request, ctx.storage)
            outcome["bytes"] = sent
            wire += sent
        outcome["status"] = "ok"
    except (protocol.ProtocolError, ClientGone, Cut, OSError) as exc:
        outcome["error"], answer = describe_failure(exc, ctx)
        if answer:
            _try_send(conn, protocol.error_reply(answer))
    except Exception as exc:  # a bug must cost one request, not the worker
        log.exception("internal error serving %s:%s", *ready.peer)
        outcome["error"] = f"internal error: {type(exc).__name__}: {exc}"
        _try_send(conn, protocol.error_reply("Internal server error"))
    finally:
        try:
            record_outcome(ctx, outcome, started, clock, wire)
        finally:
            _close(conn)  # after the row is written: a client that sees the close can read it


# --- the course's JSON protocol (port 6666) -------------------------------------

Step = Literal["next", "wait", "close"]  # after a request: serve the next one, wait for it, or close


class JsonSession:
    """The requests of one JSON connection that have arrived, served one after another.

    The framing rules (where a request ends, bare commands, when the
    connection closes after an error) are in ``app/json_protocol.py``. When
    no whole request is left in the buffer, ``run()`` returns the
    connection's state and the connection goes back to the waiting room: a
    kept-open connection between requests holds no worker.
    """

    def __init__(self, conn: socket.socket, ready: Ready, ctx: ServerContext) -> None:
        self.conn = conn
        self.peer = ready.peer
        self.ctx = ctx
        self.pending = ready.buffer  # bytes not used yet: the next request's start
        self.bare = ready.bare  # the buffer is a whole bare command (its quiet period has passed)
        self.client_done = ready.client_done  # the client has closed its side
        self.served = ready.served  # requests handled on this connection
        # Per request (reset by serve_one):
        self.started = time.time()
        self.clock = time.perf_counter()
        self.received = 0  # bytes of the request
        self.sent = 0  # bytes of the answer
        self.words_read = False  # the request's words have come (an UPLOAD's base64 may follow)
        self.in_sync = False  # the request was read to its end: the next one can follow
        self.answering = False  # part of the answer is sent: an error can no longer be answered

    def run(self) -> Ready | None:
        """Serve every whole request in the buffer. Returns the state to wait with, or None: close."""
        while self.served < MAX_JSON_REQUESTS:
            step = self.serve_one()
            if step == "wait":
                return Ready(JSON, self.peer, self.pending, served=self.served)
            if step == "close":
                return None
        log.info("closing a JSON connection from %s:%s after %d requests", *self.peer, MAX_JSON_REQUESTS)
        return None

    def serve_one(self) -> Step:
        """Frame, answer and record the next request in the buffer."""
        outcome: dict[str, object] | None = new_outcome(self.peer)
        outcome["command"] = "JSON"
        self.started, self.clock = time.time(), time.perf_counter()
        self.received = self.sent = 0
        self.words_read = self.in_sync = self.answering = False
        step: Step = "close"
        try:
            # Every request starts under the idle timeout: an upload's rate check
            # shortens it, and the next answer must not be sent under that leftover.
            self.conn.settimeout(self.ctx.limits.idle)
            framed = self.next_request()
            if framed is None:
                outcome = None  # no whole request (yet)
                return "close" if self.client_done else "wait"
            self.serve(framed, outcome)
            outcome["status"] = "ok"
            step = "next"
        except (protocol.ProtocolError, ClientGone, Cut, OSError) as exc:
            assert outcome is not None
            outcome["error"], answer = describe_failure(exc, self.ctx)
            if answer:
                self.try_answer(json_protocol.error_answer(answer))
            # After a well-formed request that failed (say, File not found) the
            # connection can go on; after broken framing or a cut it cannot.
            if isinstance(exc, protocol.ProtocolError) and self.in_sync:
                step = "next"
        except Exception as exc:  # a bug must cost one request, not the worker
            log.exception("internal error serving %s:%s", *self.peer)
            if outcome is not None:
                outcome["error"] = f"internal error: {type(exc).__name__}: {exc}"
            self.try_answer(json_protocol.error_answer("Internal server error"))
        finally:
            if outcome is not None:
                self.served += 1
                record_outcome(self.ctx, outcome, self.started, self.clock, self.received + self.sent)
        return step

    def next_request(self) -> tuple[json_protocol.Complete | json_protocol.UploadHead, bytes] | None:
        """The next whole request in the buffer, with the buffer it was found in; None if there is none.

        ProtocolError("Header too large") for words that cannot end;
        ClientGone when the client closed in the middle of a request.
        """
        buffer = self.pending
        framed = json_protocol.frame_request(buffer)
        if isinstance(framed, json_protocol.Incomplete):
            if not (framed.bare and (self.bare or self.client_done)):
                if self.client_done and not json_protocol.is_blank(buffer):
                    raise ClientGone("connection closed in the middle of a request")
                return None
            framed = json_protocol.bare_request(buffer)
        self.bare = False
        if isinstance(framed, json_protocol.UploadHead):
            self.received += framed.body
            self.words_read = True
            return framed, buffer
        self.pending = buffer[framed.rest :]
        self.received += framed.rest
        self.words_read = self.in_sync = True
        return framed, buffer

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

    def receive_upload(self, name: str, body: bytes) -> tuple[int, str]:
        """Decode and store an UPLOAD's base64 up to the terminator. Returns (bytes, sha256).

        ``body`` is the part of the base64 that came with the request's words.
        The size is known only as the base64 arrives: the upload is refused
        as soon as it passes ``--max-upload``.
        """
        limit = self.ctx.limits.max_upload
        receiver = PacedReceiver(self.conn, self.ctx.limits)
        scanner = json_protocol.TerminatorScanner()
        decoder = Base64StreamDecoder()
        stored = 0
        with self.ctx.storage.incoming(name) as out, StorageWriter(out) as writer:
            chunk = bytearray(CHUNK)
            view = memoryview(chunk)
            data: bytes | bytearray = body
            end = len(body)
            while True:  # bounded: every round receives at least one byte, at the minimum rate
                pieces, after = scanner.feed(data, end)
                for piece in pieces:
                    # Hot loop: a C-level search and decode per received MiB; hashing
                    # and writing happen on the writer's thread meanwhile.
                    decoded = decode_piece(decoder, piece)
                    writer.write(decoded)
                    stored += len(decoded)
                if stored > limit:
                    raise too_large(self.ctx.limits)
                if after is not None:
                    self.received += after
                    self.pending = bytes(data[after:end])  # the next request may have started
                    self.in_sync = True
                    break
                self.received += end
                end = receiver.recv_into(view, CHUNK)
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


def handle_json(conn: socket.socket, ready: Ready, ctx: ServerContext) -> Ready | None:
    """Serve the JSON requests that have come on ``conn``: the state to wait with, or None once closed."""
    after = None
    try:
        after = JsonSession(conn, ready, ctx).run()
        return after
    finally:
        if after is None:
            _close(conn)


def serve_ready(conn: socket.socket, ready: Ready, ctx: ServerContext) -> Ready | None:
    """A worker's job: serve what has come on ``conn``. Returns the state to wait with, or None once closed."""
    if ready.kind == STREAM:
        handle_stream(conn, ready, ctx)
        return None
    return handle_json(conn, ready, ctx)


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


# --- the waiting room ------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A listening socket and the protocol its connections speak."""

    listener: socket.socket
    kind: Kind


def request_state(kind: Kind, buffer: bytes) -> Literal["wait", "ready", "bare"]:
    """Whether ``buffer`` holds a request that a worker can serve now.

    "ready": a whole header (JSON: whole request words, or an UPLOAD's head),
    or more bytes than a header may have (a worker answers that error);
    "bare": JSON words that are a whole bare command if the client now stays
    quiet; "wait": more bytes are needed.
    """
    try:
        if kind == STREAM:
            return "ready" if protocol.split_header(buffer) is not None else "wait"
        framed = json_protocol.frame_request(buffer)
    except protocol.ProtocolError:
        return "ready"
    if isinstance(framed, json_protocol.Incomplete):
        return "bare" if framed.bare else "wait"
    return "ready"


def nothing_asked(ready: Ready) -> bool:
    """True when the connection has sent no request (yet): whitespace between JSON requests counts as none."""
    return json_protocol.is_blank(ready.buffer) if ready.kind == JSON else not ready.buffer


@dataclass(eq=False)
class Waiting:
    """A connection in the waiting room, and when it is cut."""

    conn: socket.socket
    ready: Ready  # what it has sent so far
    deadline: float  # time.monotonic() at which it is cut ...
    cause: str  # ... for this reason: "header-timeout" or "idle-timeout"
    since: float = field(default_factory=time.time)  # a cut's outcome row starts here
    clock: float = field(default_factory=time.perf_counter)
    quiet_at: float | None = None  # a bare JSON command is whole at this time, unless more comes


@dataclass(eq=False)
class Lingering:
    """A cut connection that drains the client's input for a moment, so the client can read its answer."""

    conn: socket.socket
    until: float
    drained: int = 0


Dispatch = Callable[[socket.socket, Ready], None]


class WaitingRoom:
    """Connections wait here, at the cost of a file descriptor each, until a worker can serve them.

    One ``selectors`` loop (in the main thread, or the parent process)
    accepts every connection, reads its request header as it arrives, and
    hands the connection with what it has read to ``dispatch`` once the
    header is complete: a worker is never idle-waiting for a client. A
    header must be complete within ``Limits.header_deadline`` of the
    connection (or, on a kept-open JSON connection, of its first byte);
    a kept-open JSON connection that asks nothing for ``Limits.idle`` is
    closed; and beyond ``Limits.max_waiting`` connections the oldest one
    makes room. Each such cut has its row in the outcome log.
    """

    def __init__(self, endpoints: list[Endpoint], ctx: ServerContext, dispatch: Dispatch) -> None:
        self.ctx = ctx
        self.limits = ctx.limits
        self.dispatch = dispatch
        self.selector = selectors.DefaultSelector()
        self.waiting: dict[socket.socket, Waiting] = {}  # oldest first: dicts keep insertion order
        self.lingering: dict[socket.socket, Lingering] = {}
        self.closed = False
        # Worker threads give JSON connections back through a queue, and wake
        # the loop with a byte on a socket pair (the "self-pipe trick").
        self.returned: queue.SimpleQueue[tuple[socket.socket, Ready]] = queue.SimpleQueue()
        self.wake_reader, self.wake_writer = socket.socketpair()
        self.wake_reader.setblocking(False)
        self.wake_writer.setblocking(False)
        self.watch(self.wake_reader, self._take_returned)
        for endpoint in endpoints:
            self.watch(endpoint.listener, functools.partial(self._accept, endpoint))

    def watch(self, sock: socket.socket, callback: Callable[[], None]) -> None:
        """Call ``callback`` whenever ``sock`` is readable (listeners, worker processes' sockets)."""
        self.selector.register(sock, selectors.EVENT_READ, callback)

    def unwatch(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)

    def run(self) -> None:
        """Accept, read and hand over connections until Stop is raised."""
        while True:  # one round per batch of events, or per deadline that passes
            timeout = self._expire(time.monotonic())
            for key, _ in self.selector.select(timeout):
                if isinstance(key.data, Waiting):
                    self._read(key.data)
                elif isinstance(key.data, Lingering):
                    self._drain(key.data)
                else:
                    key.data()

    def give_back(self, conn: socket.socket, ready: Ready) -> None:
        """From a worker thread: ``conn`` waits here again for its next request."""
        if self.closed:
            _close(conn)
            return
        self.returned.put((conn, ready))
        try:
            self.wake_writer.send(b"\0")
        except OSError:
            pass  # the pair's buffer is full: the loop is awake already

    def welcome_back(self, conn: socket.socket, ready: Ready) -> None:
        """In the loop: a JSON connection whose worker has served what it had waits for its next request."""
        conn.setblocking(False)
        if nothing_asked(ready):
            self._wait(conn, ready, "idle-timeout", self.limits.idle)
        else:  # the next request has begun: its header's clock runs
            self._wait(conn, ready, "header-timeout", self.limits.header_deadline)

    def close(self) -> None:
        """Stop: close every waiting connection and the loop's own sockets (not the listeners)."""
        self.closed = True
        for conn in [*self.waiting, *self.lingering]:
            conn.close()
        self.wake_reader.close()
        self.wake_writer.close()
        self.selector.close()

    def close_copies(self) -> None:
        """In a forked worker: close this process's copies of the loop's sockets.

        Otherwise a connection the parent closes stays open in the child, and
        its client never sees the end. Nothing is unregistered: the epoll
        instance is shared with the parent, and unregistering would remove the
        parent's registrations.
        """
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.wake_writer.close()
        self.selector.close()

    # -- inside the loop --

    def _expire(self, now: float) -> float | None:
        """Hand over quiet bare commands, cut what is past its deadline; seconds until the next deadline.

        One scan of the room per round: simple, and cheap for the thousand
        connections it holds at most (a heap would pay off only for many more).
        """
        wake: float | None = None
        for waiting in list(self.waiting.values()):
            if waiting.quiet_at is not None and waiting.quiet_at <= now:
                waiting.ready.bare = True
                self._hand_over(waiting)
            elif waiting.deadline <= now:
                limit = self.limits.idle if waiting.cause == "idle-timeout" else self.limits.header_deadline
                what = "no request" if waiting.cause == "idle-timeout" else "no complete request header"
                self._cut(waiting, waiting.cause, f"{what} within {limit:g}s")
            else:
                moment = waiting.deadline if waiting.quiet_at is None else min(waiting.deadline, waiting.quiet_at)
                wake = moment if wake is None else min(wake, moment)
        for lingering in list(self.lingering.values()):
            if lingering.until <= now:
                self._end_linger(lingering)
            else:
                wake = lingering.until if wake is None else min(wake, lingering.until)
        return None if wake is None else max(0.0, wake - now)

    def _accept(self, endpoint: Endpoint) -> None:
        for _ in range(64):  # bounded: more connections are accepted in the next round
            try:
                conn, peer = endpoint.listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: pause rather than spin
                log.warning("accept failed: %s", exc.strerror or exc)
                time.sleep(0.1)
                return
            conn.setblocking(False)
            self._wait(conn, Ready(endpoint.kind, peer), "header-timeout", self.limits.header_deadline)

    def _wait(self, conn: socket.socket, ready: Ready, cause: str, seconds: float) -> None:
        if len(self.waiting) >= self.limits.max_waiting:
            oldest = next(iter(self.waiting.values()))
            detail = f"the oldest of {self.limits.max_waiting} waiting connections, closed for a new one"
            self._cut(oldest, "too-many-waiting", detail, "Server busy: too many waiting connections")
        waiting = Waiting(conn, ready, time.monotonic() + seconds, cause)
        self.waiting[conn] = waiting
        self.selector.register(conn, selectors.EVENT_READ, waiting)
        if ready.buffer:  # a given-back JSON connection may hold the start of its next request
            self._check(waiting, time.monotonic())

    def _read(self, waiting: Waiting) -> None:
        if self.waiting.get(waiting.conn) is not waiting:
            return  # handed over or cut earlier in this round
        ready = waiting.ready
        # Never more than a header may hold: a waiting connection costs at most ~8 KiB.
        room = protocol.MAX_HEADER_BYTES + len(protocol.TERMINATOR) - len(ready.buffer)
        try:
            data = waiting.conn.recv(max(room, 1))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # reset by the client: as good as closed
        if not data:
            ready.client_done = True
            if nothing_asked(ready):  # a port probe, or a JSON client that is done
                self._forget(waiting)
                waiting.conn.close()
            else:
                self._hand_over(waiting)  # a worker answers what can be answered, and records it
            return
        if waiting.cause == "idle-timeout" and not json_protocol.is_blank(data):
            # A kept-open JSON connection's next request begins: its header's clock starts now.
            waiting.cause, waiting.deadline = "header-timeout", time.monotonic() + self.limits.header_deadline
            waiting.since, waiting.clock = time.time(), time.perf_counter()
        ready.buffer += data
        self._check(waiting, time.monotonic())

    def _check(self, waiting: Waiting, now: float) -> None:
        state = request_state(waiting.ready.kind, waiting.ready.buffer)
        if state == "ready" or (state == "bare" and waiting.ready.client_done):
            self._hand_over(waiting)
        else:  # a bare command is whole once the client has been quiet for a moment
            waiting.quiet_at = now + json_protocol.BARE_COMMAND_QUIET if state == "bare" else None

    def _hand_over(self, waiting: Waiting) -> None:
        self._forget(waiting)
        self.dispatch(waiting.conn, waiting.ready)

    def _forget(self, waiting: Waiting) -> None:
        del self.waiting[waiting.conn]
        self.selector.unregister(waiting.conn)

    def _cut(self, waiting: Waiting, cause: str, detail: str, answer: str = "Timeout waiting for client") -> None:
        """Close a waiting connection, with an answer if it asked something, and record why."""
        self._forget(waiting)
        ready = waiting.ready
        outcome = new_outcome(ready.peer)
        outcome.update(worker="waiting-room", error=f"{cause}: {detail}")
        if ready.kind == JSON:
            outcome["command"] = "JSON"
        # A kept-open JSON connection that asked nothing gets no answer: it could
        # take it for the answer to the next request it sends.
        if not (ready.kind == JSON and ready.served and nothing_asked(ready)):
            reply = protocol.error_reply(answer) if ready.kind == STREAM else json_protocol.error_answer(answer)
            try:
                waiting.conn.send(reply)  # a few bytes: the socket's buffer takes them at once
            except OSError:
                pass
        record_outcome(self.ctx, outcome, waiting.since, waiting.clock, len(ready.buffer))
        try:
            waiting.conn.shutdown(socket.SHUT_WR)  # the answer, then our end of the stream
        except OSError:
            waiting.conn.close()
            return
        lingering = Lingering(waiting.conn, time.monotonic() + LINGER_SECONDS)
        self.lingering[waiting.conn] = lingering
        self.selector.register(waiting.conn, selectors.EVENT_READ, lingering)

    def _drain(self, lingering: Lingering) -> None:
        """Read and drop what a cut client still sends: closing with unread input would reset the answer."""
        try:
            data = lingering.conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        lingering.drained += len(data)
        if not data or lingering.drained >= LINGER_BYTES:
            self._end_linger(lingering)

    def _end_linger(self, lingering: Lingering) -> None:
        del self.lingering[lingering.conn]
        self.selector.unregister(lingering.conn)
        lingering.conn.close()

    def _take_returned(self) -> None:
        try:
            while self.wake_reader.recv(4096):  # bounded: the pair holds what was sent, then EAGAIN
                pass
        except BlockingIOError:
            pass
        while True:  # bounded: what the workers have put, one each
            try:
                conn, ready = self.returned.get_nowait()
            except queue.Empty:
                return
            self.welcome_back(conn, ready)


# --- pools -------------------------------------------------------------------------


class Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to stop accepting."""


def _raise_stop(signum: int, _frame: object) -> None:
    # Stopping has begun: a second Ctrl-C or SIGTERM must not interrupt the
    # clean-up (waiting for transfers under way) with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


def serve_threads(endpoints: list[Endpoint], workers: int, ctx: ServerContext) -> None:
    """The waiting room in the main thread; a pool of ``workers`` threads serves the ready requests."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="worker")

    def work(conn: socket.socket, ready: Ready) -> None:
        after = serve_ready(conn, ready, ctx)
        if after is not None:
            room.give_back(conn, after)

    def dispatch(conn: socket.socket, ready: Ready) -> None:
        pool.submit(work, conn, ready)  # beyond `workers` busy threads, it queues in order

    room = WaitingRoom(endpoints, ctx, dispatch)
    try:
        room.run()
    except Stop:
        pass
    finally:
        room.close()
        for endpoint in endpoints:
            endpoint.listener.close()
        # Connections still queued are dropped; transfers under way may finish.
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass(eq=False)
class WorkerProcess:
    """One pre-forked worker, seen from the parent."""

    index: int
    process: multiprocessing.process.BaseProcess
    control: socket.socket  # the parent's end of the Unix socket to the worker
    busy: bool = False


class ProcessPool:
    """``size`` forked worker processes; the parent hands each ready connection to an idle one.

    A connection travels as its file descriptor (``SCM_RIGHTS``, via
    ``socket.send_fds``) with a pickled Ready (what the waiting room has read
    of it) over a ``SOCK_SEQPACKET`` Unix socket, one message per hand-over;
    the worker answers ``WORKER_DONE`` when it is idle again, or gives a
    kept-open JSON connection back the same way. Ready connections beyond the
    idle workers queue here, in order. A worker's end of the socket closes
    only when it exits, so its death is seen at once: it is replaced, and the
    temporary file of the upload it was receiving is removed.
    """

    def __init__(self, size: int, ctx: ServerContext) -> None:
        self.size = size
        self.ctx = ctx
        self.workers: list[WorkerProcess] = []
        self.queue: deque[tuple[socket.socket, Ready]] = deque()
        self.room: WaitingRoom | None = None
        self.fork = multiprocessing.get_context("fork")  # children inherit the log and the storage

    def start(self, room: WaitingRoom) -> None:
        self.room = room
        self.workers = [self._start(index) for index in range(self.size)]

    def dispatch(self, conn: socket.socket, ready: Ready) -> None:
        self.queue.append((conn, ready))
        self._feed()

    def stop(self) -> None:
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()
        deadline = time.monotonic() + 10  # for all of them together, not 10 s each in turn
        for worker in self.workers:
            worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
            worker.control.close()
        for conn, _ in self.queue:
            conn.close()

    def _start(self, index: int) -> WorkerProcess:
        assert self.room is not None
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        args = (child_end, parent_end, self.ctx, self._close_copies)
        process = self.fork.Process(target=_process_worker, args=args, name=f"worker-{index}", daemon=True)
        process.start()
        child_end.close()
        worker = WorkerProcess(index, process, parent_end)
        self.room.watch(parent_end, functools.partial(self._on_message, worker))
        return worker

    def _close_copies(self) -> None:
        """In a new worker: close its copies of the parent's connections and sockets."""
        assert self.room is not None
        self.room.close_copies()
        for conn, _ in self.queue:
            conn.close()

    def _feed(self) -> None:
        """Hand queued connections to idle workers, oldest first."""
        for worker in self.workers:
            if not self.queue:
                return
            if worker.busy:
                continue
            conn, ready = self.queue.popleft()
            worker.busy = True
            try:
                # Between processes of this server only: pickle is safe here.
                socket.send_fds(worker.control, [pickle.dumps(ready)], [conn.fileno()])
            except OSError:  # the worker has just died: the connection goes to another
                self.queue.appendleft((conn, ready))
                continue
            conn.close()  # the worker has its own descriptor now

    def _on_message(self, worker: WorkerProcess) -> None:
        assert self.room is not None
        try:
            message, fds, _flags, _address = socket.recv_fds(worker.control, HANDOVER_MAX, 1)
        except OSError:
            message, fds = b"", []
        if not message:
            self._replace(worker)
            return
        if fds:  # a JSON connection comes back to wait for its next request
            self.room.welcome_back(socket.socket(fileno=fds[0]), pickle.loads(message))
        worker.busy = False
        self._feed()

    def _replace(self, worker: WorkerProcess) -> None:
        """A worker died (e.g. killed by the OOM killer): sweep its upload, start another."""
        assert self.room is not None
        self.room.unwatch(worker.control)
        worker.control.close()
        worker.process.join(timeout=5)
        removed = self.ctx.storage.sweep_temp(worker.process.pid)
        log.warning(
            "worker-%d (pid %s) exited with %s; removed %d unfinished upload(s); starting a new one",
            worker.index, worker.process.pid, worker.process.exitcode, removed,
        )  # fmt: skip
        self.workers[worker.index] = self._start(worker.index)
        self._feed()


def _process_worker(
    control: socket.socket, parent_end: socket.socket, ctx: ServerContext, close_copies: Callable[[], None]
) -> None:
    """Body of one worker process: serve the connections the parent hands over, one at a time."""
    parent_end.close()
    close_copies()
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:
        while True:
            message, fds, _flags, _address = socket.recv_fds(control, HANDOVER_MAX, 1)
            if not message:
                return  # the parent is gone
            conn = socket.socket(fileno=fds[0])
            after = serve_ready(conn, pickle.loads(message), ctx)
            if after is None:
                control.sendall(WORKER_DONE)
            else:
                socket.send_fds(control, [pickle.dumps(after)], [conn.fileno()])
                conn.close()
    except (Stop, BrokenPipeError, ConnectionResetError):
        pass


def serve_processes(endpoints: list[Endpoint], workers: int, ctx: ServerContext) -> None:
    """The waiting room in the parent; ``workers`` forked processes serve the ready requests."""
    pool = ProcessPool(workers, ctx)
    room = WaitingRoom(endpoints, ctx, pool.dispatch)
    try:
        pool.start(room)
        room.run()
    except Stop:
        pass
    finally:
        pool.stop()
        room.close()
        for endpoint in endpoints:
            endpoint.listener.close()


def open_listener(host: str, port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(BACKLOG)
    listener.setblocking(False)  # the waiting room accepts until there is nobody left, then selects
    return listener


def fit_descriptors(max_waiting: int) -> int:
    """Raise this process's open-file limit for the waiting room if allowed; the room's size that fits.

    Each waiting connection is a descriptor; FD_RESERVE more are kept for
    files being served, logs, workers and queued ready connections.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_waiting + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(1, soft - FD_RESERVE, soft // 2)
        log.warning("open-file limit %d: at most %d waiting connections, not %d", soft, fitted, max_waiting)
        return fitted
    return max_waiting


def _size_argument(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    defaults = Limits()
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
    parser.add_argument(
        "--timeout", type=float, default=defaults.idle,
        help=f"seconds a client may stay silent in a transfer or between JSON requests (default {defaults.idle:g})",
    )  # fmt: skip
    parser.add_argument(
        "--header-timeout", type=float, default=defaults.header,
        help=f"seconds a request header may take in all, at most --timeout (default {defaults.header:g})",
    )  # fmt: skip
    parser.add_argument(
        "--min-upload-rate", type=_size_argument, default=defaults.min_upload_rate, metavar="SIZE",
        help="bytes per second an upload must bring, averaged over --rate-window; 0 turns it off (default 64KiB)",
    )  # fmt: skip
    parser.add_argument(
        "--rate-window", type=float, default=defaults.rate_window,
        help=f"seconds over which --min-upload-rate is averaged (default {defaults.rate_window:g})",
    )  # fmt: skip
    parser.add_argument(
        "--max-upload", type=_size_argument, default=defaults.max_upload, metavar="SIZE",
        help="largest upload accepted, in file bytes (default 1GiB)",
    )  # fmt: skip
    parser.add_argument(
        "--max-waiting", type=int, default=defaults.max_waiting,
        help=f"connections waiting for their request at most; the oldest makes room (default {defaults.max_waiting})",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    for flag in ("timeout", "header_timeout", "rate_window"):
        if not getattr(args, flag) > 0:  # also refuses nan
            parser.error(f"--{flag.replace('_', '-')} must be positive")
    if args.max_waiting < 1:
        parser.error("--max-waiting must be at least 1")
    if args.json_port and args.json_port == args.port:
        parser.error("--json-port must differ from --port")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(processName)s/%(threadName)s %(message)s",
    )
    try:
        storage = Storage(args.storage)
        swept = storage.sweep_temp()
        outcomes = CsvLog(args.outcomes, OUTCOME_FIELDS) if args.outcomes else None
    except OSError as exc:  # e.g. a read-only folder: one line, not a traceback
        print(f"fileserver: cannot write {exc.filename or args.storage}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if swept:
        log.warning("removed %d partial upload(s) left by an earlier run", swept)
    endpoints = []
    for port, kind in [(args.port, STREAM)] + ([(args.json_port, JSON)] if args.json_port else []):
        try:
            endpoints.append(Endpoint(open_listener(args.host, port), kind))
        except OSError as exc:
            print(f"fileserver: cannot listen on {args.host}:{port}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    limits = Limits(
        idle=args.timeout, header=args.header_timeout, min_upload_rate=args.min_upload_rate,
        rate_window=args.rate_window, max_upload=args.max_upload, max_waiting=fit_descriptors(args.max_waiting),
    )  # fmt: skip
    ctx = ServerContext(storage=storage, outcomes=outcomes, limits=limits)
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
