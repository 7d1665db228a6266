"""The course's JSON protocol (port 6666, ``app/json_protocol.py``): many requests per connection.

A ``JsonSession`` serves the whole requests that have arrived on one
connection, then hands the connection back to the waiting room, so a
kept-open connection between requests holds no worker.
"""

from __future__ import annotations

import binascii
import logging
import os
import socket
import time
from typing import Literal

from app import json_protocol, protocol
from app.base64_stream import Base64StreamDecoder
from app.fileserver.common import (
    CHUNK,
    JSON,
    ClientGone,
    Cut,
    Ready,
    ServerContext,
    close_connection,
    describe_failure,
    too_large,
    try_send,
)
from app.fileserver.outcomes import new_outcome, record_outcome
from app.fileserver.storage import StorageWriter
from app.fileserver.stream import PacedReceiver, decode_piece

GET_CHUNK = 3 * 256 * 1024  # JSON GET: file bytes per piece; a multiple of 3, so no padding between pieces
MAX_JSON_REQUESTS = 1000  # requests on one JSON connection; then the server closes it

log = logging.getLogger("fileserver")

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
        if not self.answering and try_send(self.conn, data):
            self.sent += len(data)


def handle_json(conn: socket.socket, ready: Ready, ctx: ServerContext) -> Ready | None:
    """Serve the JSON requests that have come on ``conn``: the state to wait with, or None once closed."""
    after = None
    try:
        after = JsonSession(conn, ready, ctx).run()
        return after
    finally:
        if after is None:
            close_connection(conn)
