"""UDP receiver: receive a file sent by app.udp_sender (or the course's original sender) and account for every byte.

    python -m app.udp_receiver                                   # framed, 0.0.0.0:8888, one transfer
    python -m app.udp_receiver --framing raw --expect sample --payload 1
    python -m app.udp_receiver --transfers 3 --out /results/received.png --csv /results/udp.csv

For each transfer it reports the datagrams and bytes received; the
datagrams lost, duplicated and out of order; whether the reassembled file's
SHA-256 matches; and the time from the first datagram to the last.

``--framing framed`` (default): the header of each datagram says which
transfer it belongs to, its place in the file and how many there are, and
an end marker closes the transfer (see ``app/udp_framing.py``).

``--framing raw``: bare bytes, exactly the course's original wire format;
every datagram is appended in arrival order, as the original receiver did.
Nothing marks the end, so the transfer is judged by byte count and hash
against ``--expect`` (the lab's sample image, or a file).

It waits for the first datagram of a transfer as long as a person needs to
start the sender (or ``--first-wait`` seconds: the orchestrator keeps that
short). From then on it never waits forever: a transfer ends when it is
complete, or after ``--idle-timeout`` seconds without a datagram, and the
receiver stops ``--max-time`` seconds after its first datagram whatever
happens, reporting what it got.

The receiving socket is not shared by default. ``--reuse-port`` sets
SO_REUSEADDR and SO_REUSEPORT as the course's broadcast example does, so
several receivers can bind one port on one machine; but then a forgotten
receiver would silently take a share of the unicast datagrams, so the lab
leaves it off and reports a busy port instead. Broadcasts reach a socket
bound to 0.0.0.0 either way.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import socket
import sys
import time
from dataclasses import dataclass

from app import udp_framing
from app.contract import MAX_IDLE_TIMEOUT, MAX_SECONDS, MAX_UDP_PAYLOAD, UDP_PORT, UDP_RECEIVER_FIELDS
from app.csvlog import CsvLog
from app.sample_image import sample_png
from app.sizes import parse_size
from app.udp_framing import Expected, FramedTally, FramingError, RawTally, Verdict

RECV_BUFFER = 65_536  # larger than any UDP datagram, so none is ever truncated
DEFAULT_RCVBUF = 8 * 1024 * 1024  # kernel buffer: holds a whole 1-byte-per-datagram image while Python catches up
LINGER = 0.25  # seconds to wait, once a transfer looks finished, for end-marker copies or stragglers
MAX_BYTES = 256 * 1024 * 1024  # a transfer stops growing here: bounds memory whatever arrives
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; not exported by Python's socket module


@dataclass
class Limits:
    idle_timeout: float  # seconds without a datagram, once one came, before a transfer is given up
    max_time: float  # seconds from the first datagram after which the receiver stops
    first_wait: float | None = None  # seconds to wait for a transfer's first datagram; None: no limit
    linger: float = LINGER
    deadline: float | None = None  # time.monotonic() after which the receiver stops, from the first datagram


@dataclass
class Outcome:
    """One transfer as this receiver saw it."""

    verdict: Verdict
    transfer_id: int | None
    sender: str
    first: float | None  # time.time() of the first datagram
    last: float | None  # ... and of the last one that counted
    end_markers: int | None
    malformed: int
    stopped: str  # complete | end-marker | first-wait | idle-timeout | max-time | new-transfer | too-large


Pending = tuple[bytes, tuple[str, int]]  # a datagram read too early: it starts the next transfer


def _stop_reason(got: str, lingering: bool, started: bool) -> str:
    """Why a receive loop ended when no datagram came: done, out of time, or idle too long."""
    if lingering:
        return "complete"
    if got == "max-time":
        return got
    return "idle-timeout" if started else "first-wait"


class Receiver:
    """One bound socket and the loops that read transfers from it."""

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        self.sock = sock
        self.limits = limits
        self.buffer = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buffer)
        self.timeout: float | None = limits.idle_timeout
        sock.settimeout(self.timeout)
        self.finished_ids: set[int] = set()

    def _set_timeout(self, seconds: float | None) -> None:
        if seconds != self.timeout:
            self.timeout = seconds
            self.sock.settimeout(seconds)

    def _receive(self, lingering: bool, started: bool) -> tuple[memoryview, tuple[str, int]] | str:
        """The next datagram, or why there is none: ``"timeout"`` or ``"max-time"``.

        ``started``: this transfer has had a datagram, so silence is bounded by the idle timeout;
        before that the wait is ``first_wait`` (None: as long as it takes).
        """
        limits = self.limits
        if lingering:
            wanted: float | None = limits.linger
        else:
            wanted = limits.idle_timeout if started else limits.first_wait
        remaining = None if limits.deadline is None else limits.deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return "max-time"
        bounded_by_deadline = remaining is not None and (wanted is None or remaining < wanted)
        self._set_timeout(remaining if bounded_by_deadline else wanted)
        try:
            count, peer = self.sock.recvfrom_into(self.buffer)
        except TimeoutError:
            return "max-time" if bounded_by_deadline else "timeout"
        if limits.deadline is None:  # the receiver's first datagram: --max-time counts from here
            limits.deadline = time.monotonic() + limits.max_time
        return self.view[:count], peer

    def framed(self, expected: Expected, pending: Pending | None) -> tuple[Outcome, Pending | None]:
        """Read one framed transfer; returns it and a datagram of the next transfer, if one came."""
        tally: FramedTally | None = None
        malformed = 0
        first = last = None
        sender = ""
        lingering = False
        while True:
            # Per-datagram loop: parse the header, file the piece, nothing more.
            # Bounded by the deadline checked in _receive().
            if pending:
                data, peer = pending
                pending = None
            else:
                got = self._receive(lingering, started=tally is not None)
                if isinstance(got, str):
                    stopped = _stop_reason(got, lingering, started=tally is not None)
                    break
                data, peer = got
            now = time.time()
            try:
                frame = udp_framing.parse_frame(data)
            except FramingError:
                malformed += 1
                continue
            if frame.transfer_id in self.finished_ids:
                continue  # a transfer already reported (e.g. its late end markers)
            if tally is None:
                tally = FramedTally(frame.transfer_id)
                sender, first = f"{peer[0]}:{peer[1]}", now
            elif frame.transfer_id != tally.transfer_id:
                pending, stopped = (bytes(data), peer), "new-transfer"
                break
            if frame.kind == udp_framing.KIND_DATA:
                tally.add_data(frame.seq, frame.total, frame.body)
                last = now
            else:
                if not tally.end_markers:
                    last = now
                tally.add_end(frame.total, frame.body)
            if tally.bytes > MAX_BYTES:
                stopped = "too-large"
                break
            lingering = tally.complete or tally.end_markers > 0
        if tally is None:
            tally = FramedTally(transfer_id=0)
            transfer_id = None
        else:
            transfer_id = tally.transfer_id
            self.finished_ids.add(transfer_id)
            malformed += tally.inconsistent
        if stopped == "complete" and not tally.complete:
            stopped = "end-marker"  # the end marker came, some data did not
        verdict = tally.verdict(expected)
        return Outcome(verdict, transfer_id, sender, first, last, tally.end_markers, malformed, stopped), pending

    def raw(self, expected: Expected, payload: int | None) -> Outcome:
        """Read one raw transfer: append every datagram, as the original receiver did."""
        tally = RawTally(payload)
        first = last = None
        sender = ""
        lingering = False
        while True:
            # Per-datagram loop: append the bytes; bounded by the deadline in _receive().
            got = self._receive(lingering, started=first is not None)
            if isinstance(got, str):
                stopped = _stop_reason(got, lingering, started=first is not None)
                break
            data, peer = got
            last = time.time()
            if first is None:
                sender, first = f"{peer[0]}:{peer[1]}", last
            tally.add(data)
            if len(tally.received) > MAX_BYTES:
                stopped = "too-large"
                break
            # Without an end marker, "complete" means the expected number of bytes arrived.
            lingering = expected.size is not None and len(tally.received) >= expected.size
        return Outcome(tally.verdict(expected), None, sender, first, last, None, 0, stopped)


def open_socket(host: str, port: int, rcvbuf: int, reuse_port: bool) -> socket.socket:
    """Bind the receiving socket; ask for a large kernel buffer (raises OSError if it cannot bind)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if rcvbuf:
            try:
                # SO_RCVBUFFORCE may exceed the system's cap (net.core.rmem_max) but needs
                # CAP_NET_ADMIN, which the lab's programs do not have: they get the capped request.
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def udp_receive_errors() -> int | None:
    """Datagrams this network namespace's kernel dropped because a receive buffer was full."""
    try:
        with open("/proc/net/snmp", encoding="ascii") as f:
            lines = [line.split() for line in f if line.startswith("Udp:")]
        names, values = lines[0], lines[1]
        return int(values[names.index("RcvbufErrors")])
    except (OSError, IndexError, ValueError):
        return None


def load_expected(spec: str | None) -> tuple[Expected, bytes | None]:
    """``sample``: the lab's image; a path: that file; None: nothing known in advance."""
    if spec is None:
        return Expected(), None
    if spec == "sample":
        data = sample_png()
    else:
        with open(spec, "rb") as f:
            data = f.read()
    return Expected(len(data), hashlib.sha256(data).hexdigest()), data


def result_row(outcome: Outcome, framing: str, limits: Limits, rcvbuf: int, drops: int | None) -> dict[str, object]:
    v = outcome.verdict
    seconds = (outcome.last - outcome.first) if outcome.first is not None and outcome.last is not None else None
    return {
        "framing": framing, "transfer_id": "" if outcome.transfer_id is None else outcome.transfer_id,
        "sender": outcome.sender, "expected_datagrams": _blank(v.expected_datagrams), "datagrams": v.datagrams,
        "unique_datagrams": _blank(v.unique), "lost": _blank(v.lost), "duplicates": _blank(v.duplicates),
        "out_of_order": _blank(v.out_of_order), "end_markers": _blank(outcome.end_markers),
        "malformed": outcome.malformed, "bytes": v.bytes, "expected_bytes": _blank(v.expected.size),
        "expected_sha256": v.expected.sha256 or "", "sha256": v.sha256,
        "intact": "" if v.intact is None else str(v.intact).lower(), "status": v.status, "stopped": outcome.stopped,
        "start": "" if outcome.first is None else f"{outcome.first:.6f}",
        "end": "" if outcome.last is None else f"{outcome.last:.6f}",
        "seconds": "" if seconds is None else f"{seconds:.6f}", "idle_timeout": f"{limits.idle_timeout:g}",
        "rcvbuf": rcvbuf, "kernel_drops": _blank(drops),
    }  # fmt: skip


def _blank(value: int | None) -> object:
    return "" if value is None else value


def describe(row: dict[str, object]) -> str:
    """One human line per transfer."""
    sha = "sha256 ok" if row["intact"] == "true" else ("sha256 MISMATCH" if row["intact"] == "false" else "unverified")
    counts = f"{row['datagrams']} datagrams"
    if row["expected_datagrams"] != "":
        counts = f"{row['unique_datagrams'] or row['datagrams']}/{row['expected_datagrams']} datagrams"
    extra = ""
    if row["lost"] != "":
        extra = f", lost {row['lost']}"
    if row["duplicates"] != "":
        extra += f", duplicated {row['duplicates']}, out of order {row['out_of_order']}"
    seconds = f"{float(row['seconds']):.6f} s" if row["seconds"] != "" else "-"
    who = f" from {row['sender']}" if row["sender"] else ""
    return f"{row['status']}: {counts}, {row['bytes']} bytes{extra}, {sha}, {seconds}{who} [{row['stopped']}]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app.udp_receiver", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="0.0.0.0", help="address to bind (default: all)")
    parser.add_argument("--port", type=int, default=UDP_PORT, help="UDP port (default 8888)")
    parser.add_argument("--framing", choices=udp_framing.FRAMINGS, default="framed", help="framed (default) or raw")
    parser.add_argument("--expect", help="the file that should arrive: 'sample' (the lab's image) or a path")
    parser.add_argument("--payload", type=int, help="raw mode: the sender's bytes per datagram (to count losses)")
    parser.add_argument("--transfers", type=int, default=1, help="transfers to receive before exiting (default 1)")
    parser.add_argument("--first-wait", type=float, help="seconds to wait for a first datagram (default: no limit)")
    parser.add_argument("--idle-timeout", type=float, default=5.0, help="seconds of silence, once data came, to stop")
    parser.add_argument("--max-time", type=float, default=300.0, help="seconds from the first datagram to stop anyway")
    parser.add_argument("--rcvbuf", default=str(DEFAULT_RCVBUF), help="kernel receive buffer, e.g. 4MiB (default 8MiB)")
    parser.add_argument("--reuse-port", action="store_true", help="share the port with other sockets (see above)")
    parser.add_argument("--out", help="write the received file here (several transfers: name-2.ext, ...)")
    parser.add_argument("--csv", help="append one row per transfer to this CSV file")
    parser.add_argument("--cell", default="", help="label written in the CSV's cell column")
    parser.add_argument("--label", default=socket.gethostname(), help="receiver name in the CSV (default: hostname)")
    parser.add_argument("--quiet", action="store_true", help="print only the 'listening' line")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error("--port must be from 1 to 65535")
    if not 1 <= args.transfers <= 1000:
        parser.error("--transfers must be from 1 to 1000")
    if not 0 < args.idle_timeout <= MAX_IDLE_TIMEOUT or not 0 < args.max_time <= MAX_SECONDS:
        parser.error(f"--idle-timeout must be from 0 to {MAX_IDLE_TIMEOUT} s and --max-time from 0 to {MAX_SECONDS} s")
    if args.first_wait is not None and not 0 < args.first_wait <= MAX_SECONDS:
        parser.error(f"--first-wait must be from 0 to {MAX_SECONDS} s")
    if args.payload is not None and not 1 <= args.payload <= MAX_UDP_PAYLOAD:
        parser.error(f"--payload must be from 1 to {MAX_UDP_PAYLOAD}")
    try:
        args.rcvbuf = parse_size(args.rcvbuf)
    except ValueError as exc:
        parser.error(f"--rcvbuf: {exc}")
    if args.rcvbuf > 1 << 30:
        parser.error("--rcvbuf must be at most 1GiB")
    try:
        expected, _ = load_expected(args.expect)
    except OSError as exc:
        parser.error(f"--expect: cannot read {args.expect}: {exc.strerror or exc}")

    try:
        sock = open_socket(args.host, args.port, args.rcvbuf, args.reuse_port)
    except OSError as exc:
        hint = " (is another receiver running? --reuse-port shares it)" if exc.errno == errno.EADDRINUSE else ""
        print(f"udp_receiver: cannot bind {args.host}:{args.port}: {exc.strerror or exc}{hint}", file=sys.stderr)
        return 1
    limits = Limits(args.idle_timeout, args.max_time, args.first_wait)
    rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    out = CsvLog(args.csv, UDP_RECEIVER_FIELDS) if args.csv else None
    drops_before = udp_receive_errors()
    # The orchestrator waits for this line: from here on no datagram is missed.
    waits = "waiting for a sender" if args.first_wait is None else f"waiting up to {args.first_wait:g} s for a sender"
    print(f"listening on {args.host}:{args.port} ({args.framing}, {waits}, idle timeout {args.idle_timeout:g} s, "
          f"receive buffer {rcvbuf} bytes)", flush=True)  # fmt: skip
    receiver = Receiver(sock, limits)
    pending: Pending | None = None
    failures = 0
    with sock:
        for number in range(1, args.transfers + 1):
            if args.framing == "framed":
                outcome, pending = receiver.framed(expected, pending)
            else:
                outcome = receiver.raw(expected, args.payload)
            drops_now = udp_receive_errors()
            drops = None if drops_before is None or drops_now is None else drops_now - drops_before
            drops_before = drops_now
            row = result_row(outcome, args.framing, limits, rcvbuf, drops)
            row.update(cell=args.cell, receiver=args.label)
            if args.out and outcome.verdict.datagrams:
                stem, ext = os.path.splitext(args.out)
                path = args.out if number == 1 else f"{stem}-{number}{ext}"
                try:
                    with open(path, "wb") as f:
                        f.write(outcome.verdict.assembled)
                except OSError as exc:
                    row["error"] = f"cannot write {path}: {exc.strerror or exc}"
            if out:
                out.write(row)
            if not args.quiet:
                print(f"transfer {number}: {describe(row)}", flush=True)
            failures += row["status"] not in ("ok", "unverified") or bool(row.get("error"))
            if outcome.stopped in ("first-wait", "idle-timeout", "max-time") and not outcome.verdict.datagrams:
                break  # nobody is sending: do not wait again for the remaining transfers
            if outcome.stopped == "max-time":
                break
    if out:
        out.close()
    return 0 if failures == 0 else 3


if __name__ == "__main__":
    sys.exit(main())
