"""What every part of the file server shares.

The limits a client must keep to, the context every worker is given, the
state a connection carries between the waiting room and a worker
(``Ready``), the ways a request can fail, and the helpers that answer and
close a connection so that the client can still read the answer.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Literal

from app import protocol
from app.csvlog import CsvLog
from app.fileserver.storage import Storage
from app.sizes import format_size

CHUNK = 1 << 20  # bytes per recv(): large reads keep per-call overhead low
LINGER_SECONDS = 1.0  # before closing: at most this long draining input the client still sends
LINGER_BYTES = 4 << 20  # ... and at most this many bytes

STREAM, JSON = "stream", "json"  # the two protocols, as a connection's kind
Kind = Literal["stream", "json"]


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


# --- how a request fails -----------------------------------------------------------


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


# --- connection helpers -----------------------------------------------------------


def try_send(conn: socket.socket, data: bytes) -> bool:
    """Best-effort error answer: the client may already be gone. True if it was sent."""
    try:
        conn.sendall(data)
        return True
    except OSError:
        return False


def peek(conn: socket.socket, size: int) -> bytes:
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


def close_connection(conn: socket.socket) -> None:
    """Close ``conn`` so that the client can read the answer.

    Closing a socket with unread input makes the kernel send a reset, and a
    reset can destroy the answer before the client reads it. So when the
    client is still sending (e.g. an upload refused half way), the answer is
    followed by our end-of-stream and the input is read and dropped first,
    for at most LINGER_SECONDS and LINGER_BYTES.
    """
    try:
        if peek(conn, 1):
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
