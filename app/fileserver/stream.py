"""The streaming dialect (port 8889, ``app/protocol.py``): one request per connection.

An upload's base64 is decoded while it arrives, in 1 MiB pieces, and stored
through ``Storage.incoming``; a download is sent with ``sendfile()``. The
paced receiver and the piece decoder here serve the JSON protocol's uploads too.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from app import protocol
from app.base64_stream import Base64Error, Base64StreamDecoder
from app.fileserver.common import (
    CHUNK,
    ClientGone,
    Cut,
    Limits,
    Ready,
    ServerContext,
    close_connection,
    describe_failure,
    peek,
    too_large,
    try_send,
)
from app.fileserver.outcomes import new_outcome, record_outcome
from app.fileserver.storage import Storage, StorageWriter
from app.sizes import format_size

log = logging.getLogger("fileserver")


# --- an upload's body (the JSON protocol's uploads use these too) -----------------


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


# --- one request of the streaming dialect ------------------------------------------


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
        if early[request.size :].strip() or peek(conn, 64).strip():
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
            try_send(conn, protocol.error_reply(answer))
    except Exception as exc:  # a bug must cost one request, not the worker
        log.exception("internal error serving %s:%s", *ready.peer)
        outcome["error"] = f"internal error: {type(exc).__name__}: {exc}"
        try_send(conn, protocol.error_reply("Internal server error"))
    finally:
        try:
            record_outcome(ctx, outcome, started, clock, wire)
        finally:
            close_connection(conn)  # after the row is written: a client that sees the close can read it
