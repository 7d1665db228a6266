"""UDP sender: one file to several receivers at once, in the course's concurrency models.

    python -m app.udp_sender --model thread                    # to alpine-1 and alpine-3, port 8888
    python -m app.udp_sender --model process-pool --payload 1 --framing raw
    python -m app.udp_sender --model broadcast                 # to the lab subnet's broadcast address
    python -m app.udp_sender --model asyncio --dest 127.0.0.1:9001 --dest 127.0.0.1:9002 --file photo.jpg

The course's assignment: alpine-2 sends an image of about 12 KB to alpine-1
and alpine-3 at the same time, one byte per datagram, with each model:

``process``       one ``multiprocessing.Process`` per destination, start, then join;
``thread``        one ``threading.Thread`` per destination, start, then join;
``process-pool``  ``multiprocessing.Pool(processes=20).apply_async(...)``, then ``.get(timeout=...)``;
``thread-pool``   ``ThreadPoolExecutor(max_workers=4).submit(...)``, then ``.result()``;
``asyncio``       one datagram endpoint per destination, all in one thread (the lab's addition);
``broadcast``     one stream to the subnet's broadcast address, which every receiver gets.

The total time runs from the start of the first worker to the completion of
the last, as the original measured it (pools are created before the clock
starts, as in the original). Each destination also records its own time,
from its first datagram to its last.

``--timeout`` is one deadline for the whole round: every worker checks it
before each datagram and stops by itself, reporting how many it did send.
No worker thread or process outlives its round, so a slow round can never
keep sending while the next ``--repeats`` round is measured.

With ``--framing framed`` (the default) every datagram carries a small
header and the transfer ends with an end marker (see ``app/udp_framing.py``);
``--framing raw`` sends bare bytes exactly like the original, so the
course's own receiver can listen to this sender.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from app import udp_framing
from app.contract import MAX_RATE, MAX_SECONDS, RECEIVER_NODES, UDP_PORT, UDP_SENDER_FIELDS, max_payload
from app.csvlog import CsvLog
from app.sample_image import sample_png

MODELS = ("process", "thread", "process-pool", "thread-pool", "asyncio", "broadcast")
DEFAULT_DESTINATIONS = tuple(RECEIVER_NODES)  # Compose's DNS finds them on whatever subnet the lab uses
POOL_PROCESSES = 20  # the original's Pool(processes=20)
POOL_THREADS = 4  # the original's ThreadPoolExecutor(max_workers=4)
END_COPIES = 3  # end markers sent per transfer: one lost copy must not leave a receiver guessing
ASYNC_YIELD_EVERY = 64  # unpaced asyncio sends: let the other destinations' tasks run this often
STOP_GRACE = 2.0  # seconds a worker has, after the deadline, to hand in its row before it counts as lost


@dataclass(frozen=True)
class Job:
    """Everything one destination's worker needs; plain data, so it can go to another process."""

    host: str
    port: int
    data: bytes
    sha256: str
    payload: int
    framing: str
    transfer_id: int
    rate: float  # datagrams per second; 0: as fast as possible
    timeout: float  # seconds allowed for the whole round (the models turn it into one deadline)
    broadcast: bool = False


def open_socket(job: Job, deadline: float) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if job.broadcast:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)  # without it sendto() fails with EACCES
    # A send that cannot go out before the deadline raises instead of hanging.
    sock.settimeout(max(0.001, deadline - time.monotonic()))
    return sock


def datagrams_for(job: Job) -> list[bytes]:
    """The data datagrams and, when framed, the end markers, in sending order."""
    datagrams = udp_framing.build_datagrams(job.data, job.payload, job.framing, job.transfer_id)
    if job.framing == "framed":
        end = udp_framing.end_frame(job.transfer_id, len(datagrams), len(job.data), job.sha256)
        datagrams += [end] * END_COPIES
    return datagrams


def _row(job: Job, datagrams: list[bytes], count: int, started: float, seconds: float, error: str) -> dict[str, object]:
    """A destination's CSV row: ``count`` of ``datagrams`` went out in ``seconds``."""
    data_total = udp_framing.count_datagrams(len(job.data), job.payload)
    data_sent = min(count, data_total)
    return {
        "destination": job.host, "port": job.port, "datagrams": data_sent, "end_markers": count - data_sent,
        "bytes": min(len(job.data), data_sent * job.payload), "wire_bytes": sum(map(len, datagrams[:count])),
        "start": f"{started:.6f}", "end": f"{started + seconds:.6f}", "seconds": f"{seconds:.6f}",
        "status": "error" if error else "ok", "error": error,
    }  # fmt: skip


def _late(job: Job, count: int, datagrams: list[bytes]) -> str:
    """The error of a destination stopped by the deadline: says how far it got."""
    return f"did not finish in {job.timeout:g}s: sent {count} of {len(datagrams)} datagrams"


def send_to(job: Job, deadline: float) -> dict[str, object]:
    """One destination: send every datagram until ``deadline``, return its CSV row. Never raises.

    ``deadline`` is a ``time.monotonic()`` value. That clock is the same for
    the whole machine, so a deadline set by the parent holds in a forked child too.
    """
    datagrams = datagrams_for(job)
    address = (job.host, job.port)
    count = 0
    error = ""
    started = time.time()
    clock = time.perf_counter()
    now = time.monotonic
    try:
        with open_socket(job, deadline) as sock:
            # Hot loop, once per datagram (12,371 times for one byte each):
            # local names for the methods, nothing printed. (The original
            # printed a line per byte, which is terminal work, not sending.)
            # Reading the clock costs far less than the send beside it.
            sendto = sock.sendto
            if job.rate > 0:
                for datagram in datagrams:
                    delay = clock + count / job.rate - time.perf_counter()
                    if now() + max(delay, 0) >= deadline:
                        break  # this datagram is due after the deadline: stop now rather than sleep past it
                    if delay > 0:
                        time.sleep(delay)
                    sendto(datagram, address)
                    count += 1
            else:
                for datagram in datagrams:
                    if now() >= deadline:
                        break
                    sendto(datagram, address)
                    count += 1
        if count < len(datagrams):
            error = _late(job, count, datagrams)
    except TimeoutError:
        error = f"send timed out after {count} datagrams (deadline {job.timeout:g}s)"
    except OSError as exc:
        error = f"send failed after {count} datagrams: {exc.strerror or exc}"
    return _row(job, datagrams, count, started, time.perf_counter() - clock, error)


def _failed(job: Job, error: str) -> dict[str, object]:
    """The row of a destination whose worker never reported."""
    return _row(job, [], 0, time.time(), 0.0, error)


# --- the concurrency models -----------------------------------------------
# Each returns one row per destination and the total time, measured like the
# original: from just before the first worker starts to the last completion.
# Each sets one deadline for the round; the workers stop by themselves at it,
# and the model waits for them a little longer (STOP_GRACE) to collect their rows.


def _left(deadline: float) -> float:
    """Seconds still to wait for a worker: until the deadline, plus the grace to report."""
    return max(0.01, deadline + STOP_GRACE - time.monotonic())


def _process_worker(job: Job, deadline: float, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    results.put(send_to(job, deadline))


def run_processes(jobs: list[Job], timeout: float) -> tuple[list[dict[str, object]], float, float]:
    """Model 1: a ``multiprocessing.Process`` per destination, start, then join."""
    context = multiprocessing.get_context("fork")  # the original's default on Linux
    results = context.Queue()
    started, clock = time.time(), time.perf_counter()
    deadline = time.monotonic() + timeout
    workers = [context.Process(target=_process_worker, args=(job, deadline, results)) for job in jobs]
    for worker in workers:
        worker.start()
    rows: list[dict[str, object]] = []
    # Read the results before joining: a child does not exit until its queued row has been taken.
    while len(rows) < len(jobs):
        try:
            rows.append(results.get(timeout=_left(deadline)))
        except queue.Empty:
            break
    for worker in workers:
        worker.join(timeout=_left(deadline))
    seconds = time.perf_counter() - clock
    for worker in workers:
        if worker.is_alive():  # only if it is stuck where it cannot see the deadline
            worker.terminate()
            worker.join(5)
    return _complete(jobs, rows, f"process did not finish in {timeout:g}s"), started, seconds


def run_threads(jobs: list[Job], timeout: float) -> tuple[list[dict[str, object]], float, float]:
    """Model 2: a ``threading.Thread`` per destination, start, then join."""
    rows: list[dict[str, object]] = []
    started, clock = time.time(), time.perf_counter()
    deadline = time.monotonic() + timeout
    # A thread cannot be killed, so each one stops itself at the deadline and the join
    # below sees it end; daemon only so that a thread stuck in the kernel cannot block exit.
    workers = [
        threading.Thread(target=lambda job=job: rows.append(send_to(job, deadline)), daemon=True) for job in jobs
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=_left(deadline))
    seconds = time.perf_counter() - clock
    return _complete(jobs, rows, f"thread did not finish in {timeout:g}s"), started, seconds


def run_process_pool(jobs: list[Job], timeout: float) -> tuple[list[dict[str, object]], float, float]:
    """Model 3: ``Pool(processes=20).apply_async(...)``, then ``.get(timeout=...)``."""
    rows: list[dict[str, object]] = []
    with multiprocessing.get_context("fork").Pool(processes=POOL_PROCESSES) as pool:
        started, clock = time.time(), time.perf_counter()
        deadline = time.monotonic() + timeout
        pending = [pool.apply_async(send_to, (job, deadline)) for job in jobs]
        for result in pending:
            try:
                rows.append(result.get(timeout=_left(deadline)))
            except multiprocessing.TimeoutError:
                pass
        seconds = time.perf_counter() - clock
    # Leaving the with block terminates the pool's processes: none outlives the round.
    return _complete(jobs, rows, f"pool task did not finish in {timeout:g}s"), started, seconds


def run_thread_pool(jobs: list[Job], timeout: float) -> tuple[list[dict[str, object]], float, float]:
    """Model 4: ``ThreadPoolExecutor(max_workers=4).submit(...)``, then ``.result()``."""
    rows: list[dict[str, object]] = []
    executor = ThreadPoolExecutor(max_workers=POOL_THREADS)
    try:
        started, clock = time.time(), time.perf_counter()
        deadline = time.monotonic() + timeout
        futures = [executor.submit(send_to, job, deadline) for job in jobs]
        for future in futures:
            try:
                rows.append(future.result(timeout=_left(deadline)))
            except TimeoutError:
                pass
        seconds = time.perf_counter() - clock
    finally:
        # Wait for the pool's threads: each task stops at the deadline, so this is short. Not
        # waiting would leave a running (non-daemon) thread that the interpreter waits for at exit.
        executor.shutdown(wait=True, cancel_futures=True)
    return _complete(jobs, rows, f"pool task did not finish in {timeout:g}s"), started, seconds


class _Endpoint(asyncio.DatagramProtocol):
    """Tracks flow control and errors of one asyncio datagram endpoint."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.error: OSError | None = None

    def pause_writing(self) -> None:  # the transport's buffer is full: wait before sending more
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def error_received(self, exc: OSError) -> None:
        self.error = self.error or exc


async def _send_async(job: Job, deadline: float) -> dict[str, object]:
    """One destination as an asyncio task, until ``deadline``; interleaves with the other destinations' tasks."""
    loop = asyncio.get_running_loop()
    datagrams = datagrams_for(job)
    address = (job.host, job.port)
    sock = open_socket(job, deadline)
    sock.setblocking(False)
    transport, endpoint = await loop.create_datagram_endpoint(_Endpoint, sock=sock)
    count = 0
    error = ""
    now = time.monotonic
    started, clock = time.time(), time.perf_counter()
    try:
        for datagram in datagrams:
            if job.rate > 0:
                delay = clock + count / job.rate - time.perf_counter()
                if now() + max(delay, 0) >= deadline:
                    break  # due after the deadline
                if delay > 0:
                    await asyncio.sleep(delay)
            elif count and count % ASYNC_YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if now() >= deadline:
                break
            if not endpoint.writable.is_set():
                try:
                    await asyncio.wait_for(endpoint.writable.wait(), deadline - now())
                except TimeoutError:
                    break  # the buffer never drained before the deadline
            transport.sendto(datagram, address)
            count += 1
            if endpoint.error:
                break
        while transport.get_write_buffer_size() and not endpoint.error:  # until the last datagram left
            if now() >= deadline:
                error = f"did not finish in {job.timeout:g}s: datagrams still queued in asyncio"
                break
            await asyncio.sleep(0.001)
        if endpoint.error:
            error = f"send failed: {endpoint.error.strerror or endpoint.error}"
        elif count < len(datagrams):
            error = _late(job, count, datagrams)
    finally:
        transport.close()
    return _row(job, datagrams, count, started, time.perf_counter() - clock, error)


def run_asyncio(jobs: list[Job], timeout: float) -> tuple[list[dict[str, object]], float, float]:
    """Model 5: one asyncio datagram endpoint per destination, all in one thread."""
    timing: list[float] = []

    async def all_destinations() -> list[dict[str, object]]:
        timing.extend([time.time(), time.perf_counter()])
        deadline = time.monotonic() + timeout
        tasks = [asyncio.create_task(_send_async(job, deadline)) for job in jobs]
        _, late = await asyncio.wait(tasks, timeout=_left(deadline))
        timing.append(time.perf_counter())
        for task in late:  # only if stuck where it cannot see the deadline: cancel, and let it close its socket
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        rows = []
        for job, task in zip(jobs, tasks, strict=True):
            if task in late:
                continue  # no row: _complete() reports it
            if task.exception() is not None:
                rows.append(_failed(job, f"asyncio task failed: {task.exception()}"))
            else:
                rows.append(task.result())
        return rows

    rows = asyncio.run(all_destinations())
    return _complete(jobs, rows, f"task did not finish in {timeout:g}s"), timing[0], timing[2] - timing[1]


def run_broadcast(jobs: list[Job], timeout: float) -> tuple[list[dict[str, object]], float, float]:
    """Broadcast: one stream to the broadcast address; every receiver on the subnet gets it."""
    started, clock = time.time(), time.perf_counter()
    deadline = time.monotonic() + timeout
    rows = [send_to(job, deadline) for job in jobs]  # a single job: the broadcast address
    return rows, started, time.perf_counter() - clock


def _complete(jobs: list[Job], rows: list[dict[str, object]], error: str) -> list[dict[str, object]]:
    """One row per destination, in the given order; a worker that never reported gets a failed row."""
    by_host = {(row["destination"], row["port"]): row for row in rows}
    return [by_host.get((job.host, job.port)) or _failed(job, error) for job in jobs]


RUNNERS: dict[str, Callable[[list[Job], float], tuple[list[dict[str, object]], float, float]]] = {
    "process": run_processes,
    "thread": run_threads,
    "process-pool": run_process_pool,
    "thread-pool": run_thread_pool,
    "asyncio": run_asyncio,
    "broadcast": run_broadcast,
}


# --- command line ---------------------------------------------------------


def parse_destination(text: str, default_port: int) -> tuple[str, int]:
    """``"host"`` or ``"host:port"``; the host resolved to an IPv4 address before any timing starts."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, str(default_port)
    # Only ASCII digits, and few of them: str.isdigit() also accepts "²" and "٨", which int()
    # refuses or reads as another number, and int() refuses strings of thousands of digits.
    if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"bad port in {text!r}: give a number from 1 to 65535")
    try:
        return socket.gethostbyname(host), int(port_text)
    except OSError:
        raise ValueError(f"cannot resolve {host!r}") from None


def default_broadcast() -> str:
    """The broadcast address of alpine-1's /24, the lab's subnet (e.g. 172.16.16.255)."""
    try:
        address = socket.gethostbyname(DEFAULT_DESTINATIONS[0])
    except OSError:
        raise ValueError(f"cannot resolve {DEFAULT_DESTINATIONS[0]!r} to find the subnet; give --broadcast") from None
    return address.rsplit(".", 1)[0] + ".255"


def load_file(spec: str) -> bytes:
    """``sample``: the lab's generated image; anything else: a file path."""
    if spec == "sample":
        return sample_png()
    with open(spec, "rb") as f:
        return f.read()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.udp_sender", description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS, default="thread", help="concurrency model (default thread)")
    parser.add_argument("--dest", action="append", metavar="HOST[:PORT]",
                        help="a receiver; repeatable (default: alpine-1 and alpine-3)")  # fmt: skip
    parser.add_argument("--port", type=int, default=UDP_PORT, help="receivers' UDP port (default 8888)")
    parser.add_argument("--broadcast", help="address for --model broadcast (default: alpine-1's /24, .255)")
    parser.add_argument("--file", default="sample", help="file to send (default: the lab's 12,371-byte sample PNG)")
    parser.add_argument("--payload", type=int, default=1, help="file bytes per datagram (default 1, as the original)")
    parser.add_argument("--framing", choices=udp_framing.FRAMINGS, default="framed",
                        help="framed (header, end marker; default) or raw (bare bytes, as the original)")  # fmt: skip
    parser.add_argument("--rate", type=float, default=0.0, help="datagrams per second per destination (0: unpaced)")
    parser.add_argument("--repeats", type=int, default=1, help="send the file this many times (default 1)")
    parser.add_argument("--transfer-id", type=int, help="first transfer id (default: random)")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline of each round in seconds (default 60)")
    parser.add_argument("--csv", help="append one row per destination and repeat to this CSV file")
    parser.add_argument("--cell", default="", help="label written in the CSV's cell column")
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    limit = max_payload(args.framing)
    if not 1 <= args.payload <= limit:
        parser.error(f"--payload must be from 1 to {limit} bytes with --framing {args.framing}")
    if not 0 <= args.rate <= MAX_RATE:
        parser.error(f"--rate must be from 0 to {MAX_RATE} datagrams per second")
    if not 1 <= args.repeats <= 1000:
        parser.error("--repeats must be from 1 to 1000")
    if not 0 < args.timeout <= MAX_SECONDS:
        parser.error(f"--timeout must be from 0 to {MAX_SECONDS} seconds")
    if args.transfer_id is not None and not 0 <= args.transfer_id <= 2**32 - args.repeats:
        parser.error("--transfer-id must fit in 32 bits")
    try:
        data = load_file(args.file)
    except OSError as exc:
        parser.error(f"--file: cannot read {args.file}: {exc.strerror or exc}")
    try:
        if args.model == "broadcast":
            targets = [parse_destination(args.broadcast or default_broadcast(), args.port)]
        else:
            targets = [parse_destination(d, args.port) for d in args.dest or DEFAULT_DESTINATIONS]
    except ValueError as exc:
        parser.error(f"--dest/--broadcast: {exc}")
    if len(set(targets)) != len(targets):
        parser.error("--dest: give each destination once")
    sha256 = hashlib.sha256(data).hexdigest()
    first_id = args.transfer_id if args.transfer_id is not None else int.from_bytes(os.urandom(4)) % (2**31)
    datagrams = udp_framing.count_datagrams(len(data), args.payload)
    if not args.quiet:
        print(f"sending {args.file} ({len(data)} bytes, sha256 {sha256[:16]}...) in {datagrams} datagrams "
              f"of {args.payload} byte(s), {args.framing}, model {args.model}, to "
              + ", ".join(f"{host}:{port}" for host, port in targets))  # fmt: skip

    out = CsvLog(args.csv, UDP_SENDER_FIELDS) if args.csv else None
    failures = 0
    for repeat in range(1, args.repeats + 1):
        transfer_id = first_id + repeat - 1
        jobs = [
            Job(host, port, data, sha256, args.payload, args.framing, transfer_id, args.rate, args.timeout,
                broadcast=args.model == "broadcast")
            for host, port in targets
        ]  # fmt: skip
        rows, run_start, run_seconds = RUNNERS[args.model](jobs, args.timeout)
        labels = {"cell": args.cell, "repeat": repeat, "model": args.model, "framing": args.framing,
                  "payload": args.payload, "rate": f"{args.rate:g}", "transfer_id": transfer_id,
                  "file_bytes": len(data), "file_sha256": sha256,
                  "run_start": f"{run_start:.6f}", "run_seconds": f"{run_seconds:.6f}"}  # fmt: skip
        for row in rows:
            row.update(labels)
            if out:
                out.write(row)
        failures += sum(row["status"] != "ok" for row in rows)
        if not args.quiet:
            print(f"repeat {repeat}: total time {run_seconds:.6f} s (transfer id {transfer_id})")
            for row in rows:
                detail = row["error"] or "ok"
                print(f"  {row['destination']}:{row['port']:<5}  {row['datagrams']:>6} datagrams  "
                      f"{float(row['seconds']):.6f} s  {detail}")  # fmt: skip
    if out:
        out.close()
    return 0 if failures == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
