"""The waiting room: connections wait here, at no worker's cost, until their request header is complete."""

from __future__ import annotations

import functools
import logging
import queue
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from app import json_protocol, protocol
from app.fileserver.common import (
    JSON,
    LINGER_BYTES,
    LINGER_SECONDS,
    STREAM,
    Kind,
    Ready,
    ServerContext,
    close_connection,
)
from app.fileserver.outcomes import new_outcome, record_outcome

log = logging.getLogger("fileserver")


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
            close_connection(conn)
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
