"""The command line: ``python -m app.fileserver [options]``, its checks, and starting the chosen pool."""

from __future__ import annotations

import argparse
import logging
import resource
import signal
import socket
import sys

from app.contract import OUTCOME_FIELDS, STREAM_PORT
from app.csvlog import CsvLog
from app.fileserver.common import JSON, STREAM, Limits, ServerContext
from app.fileserver.pools import raise_stop, serve_processes, serve_threads
from app.fileserver.storage import Storage
from app.fileserver.waiting_room import Endpoint
from app.sizes import parse_size

BACKLOG = 1024  # connections the kernel keeps until the waiting room accepts them
FD_RESERVE = 256  # descriptors kept for files, logs, workers and queued connections besides the waiting room

log = logging.getLogger("fileserver")


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


def build_parser() -> argparse.ArgumentParser:
    defaults = Limits()
    parser = argparse.ArgumentParser(prog="python -m app.fileserver", description="Concurrent TCP file server.")
    parser.add_argument("--pool", choices=["thread", "process"], default="thread", help="concurrency model")
    parser.add_argument("--workers", type=int, default=5, help="pool size (default 5)")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default all)")
    parser.add_argument(
        "--port", type=int, default=STREAM_PORT, help="TCP port of the streaming dialect (default 8889)"
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
    signal.signal(signal.SIGTERM, raise_stop)
    signal.signal(signal.SIGINT, raise_stop)
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
