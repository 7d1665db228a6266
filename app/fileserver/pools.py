"""The two pools of workers that serve the requests the waiting room hands over (``--pool``).

* ``thread``: the waiting room runs in the main thread; ready requests go to
  a ``ThreadPoolExecutor`` of N threads, and extra ones wait in its queue.
* ``process``: the waiting room runs in the parent process; each ready
  connection is handed to one of N pre-forked worker processes, and extra
  ones wait in the parent's queue (see ``ProcessPool``).
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import pickle
import signal
import socket
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from app.fileserver.common import STREAM, Ready, ServerContext
from app.fileserver.json_session import handle_json
from app.fileserver.stream import handle_stream
from app.fileserver.waiting_room import Endpoint, WaitingRoom

HANDOVER_MAX = 1 << 16  # process pool: largest message between parent and worker (a Ready is at most ~8 KiB)
WORKER_DONE = b"."  # process pool: a worker's "I am idle again"

log = logging.getLogger("fileserver")


def serve_ready(conn: socket.socket, ready: Ready, ctx: ServerContext) -> Ready | None:
    """A worker's job: serve what has come on ``conn``. Returns the state to wait with, or None once closed."""
    if ready.kind == STREAM:
        handle_stream(conn, ready, ctx)
        return None
    return handle_json(conn, ready, ctx)


class Stop(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT to stop accepting."""


def raise_stop(signum: int, _frame: object) -> None:
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
    signal.signal(signal.SIGTERM, raise_stop)
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
