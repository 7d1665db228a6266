"""Stress client: N concurrent clients upload or download one file each.

    python -m app.stress_client --op upload   --size 10MiB --clients 5 --host 172.16.16.101
    python -m app.stress_client --op download --size 10MiB --clients 5 --pool process
    python -m app.stress_client --op upload   --file ./photo.jpg --clients 1
    python -m app.stress_client --op download --size 10MiB --protocol json   # port 6666

It speaks either protocol of the file server: the streaming dialect
(``--protocol stream``, port 8889, the default) or the course's JSON protocol
(``--protocol json``, port 6666), in which the whole file travels as one
base64 string inside the request or the JSON answer.

Each client streams its file in pieces, so memory stays flat whatever the
file's size (the course's original read a 100 MB file, its base64 and two
more copies into memory per client, and 50 clients were OOM-killed). A JSON
answer is parsed as it arrives, the file's base64 decoded piece by piece.
Every transfer is checked end to end with SHA-256:

* stream upload: the header carries the file's digest and the server refuses
  to store bytes that do not match it (``ERROR Checksum mismatch``);
* JSON upload: the server's answer carries the digest of what it stored, and
  the client compares it with its own;
* download: the client hashes what it receives and compares.

Every client task writes exactly one CSV row, failed ones included, with the
cause of the failure: nothing is lost from the report.
"""

from __future__ import annotations

import argparse
import binascii
import hashlib
import os
import resource
import selectors
import socket
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, replace

from app import json_protocol, protocol
from app.base64_stream import Base64Error, Base64StreamDecoder
from app.contract import CLIENT_FIELDS, PROTOCOL_PORTS, SERVER_NODE, distinct_name
from app.csvlog import CsvLog
from app.genfile import ensure_base64, ensure_file, sha256_of
from app.sizes import parse_size

# 768 KiB: a multiple of 3, so each piece encodes to base64 without padding
# and the pieces concatenate into one valid stream.
UPLOAD_CHUNK = 3 * 256 * 1024
# 2 MiB per recv(): measured about 15 % faster downloads than 1 MiB (fewer system calls per byte).
DOWNLOAD_CHUNK = 2 << 20


@dataclass(frozen=True)
class Transfer:
    """What one client does; plain data so it can be sent to a worker process."""

    op: str  # "upload" or "download"
    host: str
    port: int
    path: str  # local file: the upload's source, or the download's reference
    name: str  # file name on the server
    size: int
    sha256: str
    timeout: float
    keep_dir: str | None = None  # downloads: keep the received file here
    protocol: str = "stream"  # "stream" (port 8889) or "json" (port 6666)
    base64_path: str | None = None  # uploads: a ready base64 copy of `path` to send as it is
    client: int = 0  # which of the concurrent clients this is (1-based), for its kept file's name
    plain: bool = False  # the course's protocol exactly: no SHA-256 word in an upload, none needed in an answer
    distinct_names: bool = False  # uploads: each client stores under its own name, NNN-<name>

    def keep_path(self) -> str:
        """Where a kept download goes: one file per client, so clients never overwrite each other."""
        assert self.keep_dir
        return os.path.join(self.keep_dir, f"{self.client:03d}-{self.name}")


class TransferError(Exception):
    """A transfer failed; the message is the cause recorded in the CSV."""


def until_deadline(sock: socket.socket, deadline: float) -> None:
    """Let the next socket call block at most until ``deadline`` (time.monotonic()).

    A socket's timeout bounds one call, and a peer that sends a byte now and
    then restarts it; setting it to the time left before each call makes the
    timeout one deadline for the whole transfer. A cheap call, so it is fine
    per chunk.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError
    sock.settimeout(remaining)


class ServerError(TransferError):
    """The server answered ERROR; the message gives its reason."""

    def __init__(self, reason: object) -> None:
        super().__init__(f"server: {reason}")


class MismatchError(TransferError):
    """The bytes are not the expected ones: a checksum or a size differs."""


# Where received file bytes go, piece by piece (a piece is only valid during the call).
Sink = Callable[[bytes | memoryview], object]


def check_name(name: str) -> str:
    """``name`` if both protocols can carry it as a file name; ProtocolError otherwise."""
    protocol.check_filename(name)
    if len(name.split()) != 1:
        raise protocol.ProtocolError("both protocols separate words by blanks, so a name cannot contain one")
    return name


def _read_reply(sock: socket.socket, deadline: float) -> tuple[bool, str, bytes]:
    """Receive one ``OK …``/``ERROR …`` answer; return (ok, text, bytes after it)."""
    buffer = b""
    while True:
        until_deadline(sock, deadline)
        data = sock.recv(65536)
        if not data:
            raise TransferError("server closed the connection without an answer")
        buffer += data
        try:
            parts = protocol.split_header(buffer)
            if parts is not None:
                ok, text = protocol.parse_reply(parts[0])
                return ok, text, parts[1]
        except protocol.ProtocolError as exc:
            raise TransferError(str(exc)) from None


def _sendfile(sock: socket.socket, path: str, deadline: float) -> int:
    """Send the whole file with the kernel's sendfile(); returns the bytes sent.

    ``socket.sendfile()`` waits up to the socket's timeout for each chunk the
    peer accepts, so a slow reader could stretch it past the deadline; here
    every wait for room in the socket ends at the deadline itself.
    """
    until_deadline(sock, deadline)  # a socket with a timeout is non-blocking underneath
    sent = 0
    with open(path, "rb") as source, selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        total = os.fstat(source.fileno()).st_size
        while sent < total:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise TimeoutError
            try:
                count = os.sendfile(sock.fileno(), source.fileno(), sent, total - sent)
            except BlockingIOError:  # woken, but the socket's buffer filled again meanwhile
                continue
            if not count:
                raise TransferError(f"{path} shrank while it was sent")
            sent += count
    return sent


def _send_base64(sock: socket.socket, job: Transfer, deadline: float) -> int:
    """Send the file's base64 text; returns the bytes sent.

    With a ready base64 copy (the lab's generated files have one) the kernel
    sends it with ``sendfile()``: the client then uses almost no CPU, which
    on a shared machine is left to the server under test. Any other file is
    encoded piece by piece as it is sent, as the course's clients did.
    """
    if job.base64_path:
        return _sendfile(sock, job.base64_path, deadline)
    sent = 0
    buffer = bytearray(UPLOAD_CHUNK)
    view = memoryview(buffer)
    with open(job.path, "rb") as source:
        # Hot loop: read into one reused buffer, encode in C, send. Per-piece
        # work only; the deadline costs a clock read and a settimeout().
        while count := source.readinto(buffer):
            encoded = binascii.b2a_base64(view[:count], newline=False)
            until_deadline(sock, deadline)
            sock.sendall(encoded)  # its timeout bounds the whole call, not each send
            sent += len(encoded)
    return sent


def _send_refusable(
    sock: socket.socket,
    deadline: float,
    send: Callable[[], int],
    read_reason: Callable[[socket.socket, float], object],
) -> int:
    """``send()`` an upload's body; returns its bytes.

    If the server refuses the rest (too large, its disk full) and closes, our
    send fails with a broken pipe or a reset; the server's answer, if it is
    still in our buffer, is the cause worth recording (``read_reason`` reads
    it in the upload's protocol), raised as ServerError.
    """
    try:
        return send()
    except (BrokenPipeError, ConnectionResetError):
        try:
            reason = read_reason(sock, min(deadline, time.monotonic() + 1))
        except (OSError, TransferError):
            raise ConnectionResetError("the server closed the connection during the upload") from None
        raise ServerError(reason) from None


def _reply_text(sock: socket.socket, deadline: float) -> str:
    return _read_reply(sock, deadline)[1]


def _upload(sock: socket.socket, job: Transfer, deadline: float) -> int:
    """Send the file as base64; returns the wire bytes sent."""
    header = protocol.upload_header(job.name, protocol.base64_length(job.size), None if job.plain else job.sha256)
    until_deadline(sock, deadline)
    sock.sendall(header)
    ok, text, _ = _read_reply(sock, deadline)
    if not ok:
        raise ServerError(text)
    sent = len(header) + _send_refusable(sock, deadline, lambda: _send_base64(sock, job, deadline), _reply_text)
    ok, text, _ = _read_reply(sock, deadline)
    if not ok:
        raise ServerError(text)
    return sent


def stream_get(sock: socket.socket, name: str, deadline: float, sink: Sink | None = None) -> tuple[int, str, int]:
    """``GET <name>`` in the streaming dialect; returns (file bytes, their sha256, wire bytes).

    The file's bytes go to ``sink`` as they arrive; all ``OK <size>`` announced must come.
    """
    request = protocol.get_header(name)
    until_deadline(sock, deadline)
    sock.sendall(request)
    ok, text, first = _read_reply(sock, deadline)
    if not ok:
        raise ServerError(text)
    if not text.isdigit():
        raise TransferError(f"bad size in answer: {text!r}")
    size = int(text)
    if len(first) > size:
        raise TransferError(f"server sent more than the {size} bytes it announced")
    hasher = hashlib.sha256(first)
    received = len(first)
    if sink and first:
        sink(first)
    buffer = bytearray(DOWNLOAD_CHUNK)
    view = memoryview(buffer)
    # Hot loop: recv_into a reused buffer and hash in C; nothing per byte.
    while received < size:
        until_deadline(sock, deadline)
        count = sock.recv_into(view, min(DOWNLOAD_CHUNK, size - received))
        if not count:
            raise TransferError(f"connection closed after {received} of {size} bytes")
        hasher.update(view[:count])
        if sink:
            sink(view[:count])
        received += count
    return size, hasher.hexdigest(), len(request) + size


def _check_download(job: Transfer, size: int, digest: str) -> None:
    if size != job.size:
        raise MismatchError(f"size mismatch: server sent {size} bytes, expected {job.size}")
    if digest != job.sha256:
        raise MismatchError("checksum mismatch: received bytes differ from the reference")


def _download(sock: socket.socket, job: Transfer, deadline: float) -> int:
    """Receive the file, hash it, compare; returns the wire bytes received."""
    with _kept_copy(job) as keep:
        size, digest, wire = stream_get(sock, job.name, deadline, keep)
    _check_download(job, size, digest)
    return wire


@contextmanager
def _kept_copy(job: Transfer) -> Iterator[Sink | None]:
    """A writer into the kept copy of a download (``--keep``), or None."""
    if not job.keep_dir:
        yield None
        return
    with open(job.keep_path(), "wb") as kept:
        yield kept.write


def read_json_answer(sock: socket.socket, deadline: float) -> dict[str, object]:
    """Receive one small JSON answer (not a GET's): at most MAX_KEPT_ANSWER bytes are kept."""
    parser = json_protocol.AnswerParser()
    while not parser.done:  # bounded: the parser refuses an answer larger than its limit
        until_deadline(sock, deadline)
        data = sock.recv(65536)
        if not data:
            raise TransferError("server closed the connection without an answer")
        try:
            parser.feed(data)
        except json_protocol.AnswerError as exc:
            raise TransferError(f"bad answer: {exc}") from None
    assert parser.answer is not None
    return parser.answer


def check_json_status(answer: dict[str, object]) -> None:
    if answer.get("status") != "OK":
        raise ServerError(answer.get("data"))


def _json_answer_text(sock: socket.socket, deadline: float) -> object:
    return read_json_answer(sock, deadline).get("data")


def _json_upload(sock: socket.socket, job: Transfer, deadline: float) -> int:
    """``UPLOAD <name> <base64>\\r\\n\\r\\n``, the base64 made and sent piece by piece."""
    prefix = json_protocol.upload_prefix(job.name)
    until_deadline(sock, deadline)
    sock.sendall(prefix)

    def body() -> int:
        count = _send_base64(sock, job, deadline)
        until_deadline(sock, deadline)
        sock.sendall(protocol.TERMINATOR)
        return count + len(protocol.TERMINATOR)

    sent = len(prefix) + _send_refusable(sock, deadline, body, _json_answer_text)
    answer = read_json_answer(sock, deadline)
    check_json_status(answer)
    stored = answer.get("sha256")
    if stored is None:
        if job.plain:
            return sent  # a server of the course's protocol says no digest: the stored file is checked elsewhere
        raise TransferError("cannot verify the upload: the server's answer has no sha256")
    if stored != job.sha256:
        raise MismatchError(f"checksum mismatch: the server stored bytes with sha256 {stored}")
    return sent


def json_get(sock: socket.socket, name: str, deadline: float, sink: Sink | None = None) -> tuple[int, str, int]:
    """``GET <name>`` in the JSON protocol; returns (file bytes, their sha256, wire bytes).

    ``data_file`` is decoded while it arrives and its bytes go to ``sink``.
    """
    request = json_protocol.request("GET", name)
    until_deadline(sock, deadline)
    sock.sendall(request)
    parser = json_protocol.AnswerParser("data_file")
    decoder = Base64StreamDecoder()
    hasher = hashlib.sha256()
    received = 0
    wire = len(request)
    while not parser.done:  # bounded by the deadline; each round receives at least a byte
        until_deadline(sock, deadline)
        data = sock.recv(DOWNLOAD_CHUNK)
        if not data:
            raise TransferError(f"connection closed after {received} bytes, before the end of the answer")
        wire += len(data)
        # Hot loop: the parser hands out the base64 as a view; decode and hash in C.
        try:
            decoded = decoder.feed(parser.feed(data))
        except json_protocol.AnswerError as exc:
            raise TransferError(f"bad answer: {exc}") from None
        except Base64Error:
            raise TransferError("bad answer: data_file is not valid base64") from None
        hasher.update(decoded)
        if sink and decoded:
            sink(decoded)
        received += len(decoded)
    assert parser.answer is not None
    check_json_status(parser.answer)
    try:
        decoder.finish()
    except Base64Error:
        raise TransferError("bad answer: data_file is not valid base64") from None
    if parser.answer.get("data_namafile") != name:
        raise TransferError(f"wrong file in answer: {parser.answer.get('data_namafile')!r}")
    return received, hasher.hexdigest(), wire


def _json_download(sock: socket.socket, job: Transfer, deadline: float) -> int:
    """``GET <name>``; decode ``data_file`` while it arrives, hash it, compare. Returns wire bytes."""
    with _kept_copy(job) as keep:
        size, digest, wire = json_get(sock, job.name, deadline, keep)
    _check_download(job, size, digest)
    return wire


TRANSFERS = {
    ("stream", "upload"): _upload,
    ("stream", "download"): _download,
    ("json", "upload"): _json_upload,
    ("json", "download"): _json_download,
}


def run_transfer(job: Transfer, client: int) -> dict[str, object]:
    """One client: connect, transfer, verify. Always returns a CSV row."""
    row: dict[str, object] = {
        "client": client, "op": job.op, "volume_bytes": job.size, "status": "error", "protocol": job.protocol,
    }  # fmt: skip
    job = replace(job, client=client)
    if job.distinct_names and job.op == "upload":
        job = replace(job, name=distinct_name(job.name, client))
    started = time.time()
    clock = time.perf_counter()
    deadline = time.monotonic() + job.timeout
    try:
        with socket.create_connection((job.host, job.port), timeout=job.timeout) as sock:  # whole deadline
            row["local_port"] = sock.getsockname()[1]
            wire = TRANSFERS[job.protocol, job.op](sock, job, deadline)
        row.update(status="ok", bytes=job.size, wire_bytes=wire, sha256=job.sha256)
    except TransferError as exc:
        row["error"] = str(exc)
    except TimeoutError:
        row["error"] = f"timeout after {job.timeout:g}s"
    except OSError as exc:
        row["error"] = f"connection error: {exc.strerror or exc}"
    seconds = time.perf_counter() - clock
    row.update(start=f"{started:.6f}", end=f"{started + seconds:.6f}", seconds=f"{seconds:.6f}")
    # Peak memory of the process that ran this client (process pool: its worker;
    # thread pool: the whole stress client), to show it does not grow with file size.
    row["peak_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if row["status"] == "ok":
        row["throughput_bps"] = f"{job.size / seconds:.1f}"
    return row


def run_clients(job: Transfer, clients: int, pool: str) -> list[dict[str, object]]:
    """Run ``clients`` transfers at once in a thread or process pool."""
    executor: Executor
    if pool == "process":
        executor = ProcessPoolExecutor(max_workers=clients)
    else:
        executor = ThreadPoolExecutor(max_workers=clients)
    rows: list[dict[str, object]] = []
    started = time.time()
    with executor:
        futures = {executor.submit(run_transfer, job, index + 1): index + 1 for index in range(clients)}
        for future in as_completed(futures):
            try:
                rows.append(future.result())
            except Exception as exc:  # the worker itself died (e.g. BrokenProcessPool)
                now = time.time()
                rows.append({
                    "client": futures[future], "op": job.op, "volume_bytes": job.size, "status": "error",
                    "protocol": job.protocol,
                    "error": f"client worker died: {type(exc).__name__}: {exc}",
                    "start": f"{started:.6f}", "end": f"{now:.6f}", "seconds": f"{now - started:.6f}",
                })  # fmt: skip
    return sorted(rows, key=lambda row: int(row["client"]))  # type: ignore[call-overload]


class UsageError(Exception):
    """Bad local input (a file, a folder, a name): reported like a bad option."""


def prepare(args: argparse.Namespace) -> Transfer:
    """Resolve the local file, its size and digest before any timing starts."""
    if args.file:
        path = args.file
        try:
            size = os.path.getsize(path)
            digest = sha256_of(path)
        except OSError as exc:
            raise UsageError(f"--file: cannot read {path}: {exc.strerror or exc}") from None
    else:
        try:
            path, digest = ensure_file(args.files, args.size)
        except OSError as exc:
            raise UsageError(f"--files: cannot make the test file in {args.files}: {exc.strerror or exc}") from None
        size = args.size
    base64_path = ensure_base64(path) if args.op == "upload" and not args.file else None
    name = args.name or os.path.basename(path)
    option = "--name" if args.name else "the file's name (choose another with --name)"
    try:
        check_name(name)
    except protocol.ProtocolError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if args.keep:
        try:
            os.makedirs(args.keep, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--keep: cannot use {args.keep}: {exc.strerror or exc}") from None
    port = args.port or PROTOCOL_PORTS[args.protocol]
    return Transfer(
        args.op, args.host, port, path, name, size, digest, args.timeout, args.keep, args.protocol, base64_path,
        plain=args.plain, distinct_names=args.distinct_names,
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.stress_client", description="Concurrent upload/download stress client."
    )
    parser.add_argument("--op", choices=["upload", "download"], required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--size", type=parse_size, help="use the lab's generated file of this size, e.g. 10MiB")
    source.add_argument("--file", help="use this local file (upload source / download reference)")
    parser.add_argument("--name", help="file name on the server (default: the local file's name)")
    parser.add_argument("--clients", type=int, default=1, help="concurrent clients (default 1)")
    parser.add_argument("--pool", choices=["thread", "process"], default="thread", help="client concurrency model")
    parser.add_argument("--host", default=SERVER_NODE, help=f"server address (default {SERVER_NODE}, the lab's server)")
    parser.add_argument(
        "--protocol", choices=["stream", "json"], default="stream", help="wire protocol (default stream)"
    )
    parser.add_argument("--port", type=int, help="server port (default 8889, or 6666 with --protocol json)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per transfer (default 300)")
    parser.add_argument("--files", default=os.environ.get("PROGJAR_FILES", "files"), help="cache of generated files")
    parser.add_argument("--keep", metavar="DIR", help="downloads: keep received files in DIR (default: discard)")
    parser.add_argument("--csv", help="append one row per client to this CSV file")
    parser.add_argument("--cell", default="", help="label written in the CSV's cell column")
    parser.add_argument("--server-workers", default="", help="label: the server's worker count")
    parser.add_argument("--server-pool", default="", help="label: the server's pool mode")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="the course's protocol exactly, for servers other than the lab's: no SHA-256 word in a stream upload's "
        "header, none needed in a JSON upload's answer (check the stored file yourself)",
    )
    parser.add_argument(
        "--distinct-names", action="store_true", help="uploads: client N stores under NNN-<name>, not all under one"
    )
    parser.add_argument("--quiet", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    try:
        job = prepare(args)
    except UsageError as exc:
        parser.error(str(exc))
    rows = run_clients(job, args.clients, args.pool)
    labels = {"cell": args.cell, "clients": args.clients, "client_pool": args.pool,
              "server_workers": args.server_workers, "server_pool": args.server_pool}  # fmt: skip
    if args.csv:
        with CsvLog(args.csv, CLIENT_FIELDS) as out:
            for row in rows:
                out.write({**labels, **row})
    ok = [row for row in rows if row["status"] == "ok"]
    if not args.quiet:
        for row in rows:
            detail = (
                f"{float(row['throughput_bps']) / 2**20:8.2f} MiB/s" if row["status"] == "ok" else row.get("error", "")
            )
            print(f"client {row['client']:>3} {job.op} {row['status']:<5} {float(row['seconds']):8.3f}s  {detail}")
        print(f"{len(ok)}/{len(rows)} {job.op}s of {job.name} ({job.size} bytes) succeeded")
    return 0 if len(ok) == len(rows) else 3


if __name__ == "__main__":
    sys.exit(main())
