"""Run a matrix's UDP cells on a running lab, one cell at a time.

For each cell: start a receiver on alpine-1 and on alpine-3 (UDP 8888,
beside alpine-1's TCP file server, which keeps running), wait until both
say they are listening, run the sender on alpine-2 with the cell's model,
payload size and pacing, wait for the receivers to report (each ends at
the end marker, or after its idle timeout), copy the cell's files out of
the results volume and merge them into one row per receiver.

    results/<run-id>/
        udp.csv              one row per cell and receiver
        udp_summary.csv      one row per model, payload size and receiver, over the repeats
        udp-cells/<cell>/    sender.csv, receiver-<node>.csv and each receiver's reassembled file
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.csvlog import CsvLog
from app.sample_image import TARGET_SIZE
from app.udp_framing import MAX_FRAMED_PAYLOAD, MAX_SECONDS, START_WAIT, transfer_time_limits
from orchestrator.errors import LabError, MatrixError
from orchestrator.matrix import UdpCell
from orchestrator.nodes import ExecResult, Lab, Node
from orchestrator.results import RunFolder, read_csv
from orchestrator.telemetry import figures, sampling
from orchestrator.udp_summary import SUMMARY_FIELDS, UDP_FIELDS, describe_cell, merge_cell, summarize_udp

SENDER_NODE = "alpine-2"
RECEIVER_NODES = {"alpine-1": 101, "alpine-3": 103}  # node -> last octet of its address
UDP_PORT = 8888
SAMPLE_SIZE = TARGET_SIZE  # bytes of app.sample_image, the file every cell sends
READY_WAIT = START_WAIT  # seconds a receiver may take to start and bind
EXIT_OK = (0, 3)  # 3: the program ran and some transfer was not intact (it is in its CSV)
# Program patterns for pkill -f: "[a]pp" matches the program but not the pkill command line itself
# (nor its `timeout` wrapper), which contain the pattern with its brackets.
UDP_PROGRAMS = {SENDER_NODE: "[a]pp.udp_sender", **{name: "[a]pp.udp_receiver" for name in RECEIVER_NODES}}


def time_limits(cell: UdpCell) -> tuple[float, float]:
    """(sender --timeout, receivers' --max-time) for one cell; the matrix is checked with the same function."""
    return transfer_time_limits(SAMPLE_SIZE, cell.payload, cell.rate, cell.idle_timeout)


def sender_budget(cell: UdpCell) -> float:
    """Seconds the sender may need for one cell: generous, but bounded."""
    return time_limits(cell)[0]


def stop_udp_processes(lab: Lab) -> None:
    """No UDP sender (alpine-2) or receiver (alpine-1, alpine-3) left running in the nodes."""
    for name, pattern in UDP_PROGRAMS.items():
        lab.node(name).exec(["pkill", "-TERM", "-f", pattern], time_limit=30)


@dataclass
class ReceiverRun:
    """A receiver running in a node from a background thread, and what it said."""

    node: Node
    command: list[str]
    time_limit: float
    ready: threading.Event = field(default_factory=threading.Event)
    result: ExecResult | None = None
    error: str = ""
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"receiver-{self.node.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        def on_line(line: str) -> None:
            if line.startswith("listening"):
                self.ready.set()

        try:
            self.result = self.node.exec(self.command, time_limit=self.time_limit, on_line=on_line)
        except LabError as exc:
            self.error = str(exc)
        finally:
            self.ready.set()  # also when it failed: nobody waits for a receiver that is gone

    def wait_ready(self, timeout: float) -> bool:
        return self.ready.wait(timeout) and self.finished_with() == ""

    def finished_with(self) -> str:
        """Why the receiver is not usable, or "" while it runs or if it ended well."""
        if self.error:
            return self.error
        if self.result is not None and self.result.exit_code not in EXIT_OK:
            tail = self.result.output.strip().splitlines()[-1:] or [""]
            return f"receiver exited {self.result.exit_code}: {tail[0][:300]}"
        return ""

    def join(self, timeout: float) -> str:
        """Wait for the receiver to end; returns a problem, or ""."""
        assert self.thread is not None
        self.thread.join(timeout)
        if self.thread.is_alive():
            return f"{self.node.name}: receiver still running after {timeout:g}s"
        return self.finished_with()


def check_cells(cells: list[UdpCell]) -> None:
    """Refuse cells that cannot run, before any of them does."""
    for cell in cells:
        if cell.framing == "framed" and cell.payload > MAX_FRAMED_PAYLOAD:
            raise MatrixError(
                f"udp: payload_sizes: {cell.payload} is larger than {MAX_FRAMED_PAYLOAD}, the most a framed "
                f"datagram can carry (65507 minus the 16-byte header); use framing: raw for larger payloads"
            )
        receiver_limit = time_limits(cell)[1]
        if receiver_limit > MAX_SECONDS:
            raise MatrixError(
                f"udp: rate: {cell.rate:g} datagrams per second is too slow for payload {cell.payload}: the cell "
                f"would need up to {receiver_limit:.0f} s, more than the {MAX_SECONDS} s the programs allow"
            )


def receiver_command(cell: UdpCell, name: str, remote: str, max_time: float) -> list[str]:
    """A receiver of one cell. The sender starts right after both receivers listen, so the wait
    for its first datagram is as short as the cell's idle timeout (by hand it has no limit)."""
    return [
        "python", "-m", "app.udp_receiver", "--port", str(UDP_PORT), "--framing", cell.framing,
        "--expect", "sample", "--payload", str(cell.payload), "--first-wait", f"{cell.idle_timeout:g}",
        "--idle-timeout", f"{cell.idle_timeout:g}", "--max-time", f"{max_time:g}",
        "--csv", f"{remote}/receiver-{name}.csv", "--out", f"{remote}/{name}.png",
        "--cell", str(cell.number), "--label", name, "--quiet",
    ]  # fmt: skip


def run_udp_cell(lab: Lab, folder: RunFolder, cell: UdpCell) -> list[dict[str, object]]:
    """Run one cell; returns one row per receiver."""
    prefix = lab.settings.net_prefix
    remote = f"{folder.container_path}/udp-cells/{cell.id}"
    sender = lab.node(SENDER_NODE)
    sender.check(["rm", "-rf", remote])  # a cell run again (e.g. after --resume) starts clean
    sender.check(["mkdir", "-p", remote])
    receiver_limit = time_limits(cell)[1]
    runs = {}
    containers = {name: lab.node(name).container.id for name in (SENDER_NODE, *RECEIVER_NODES)}
    for name in RECEIVER_NODES:
        command = receiver_command(cell, name, remote, receiver_limit)
        runs[name] = ReceiverRun(lab.node(name), command, cell.idle_timeout + receiver_limit + 10)
    with sampling(lab.client, containers) as samples:  # from the receivers' start to their end
        problems = _run_programs(lab, cell, runs, remote)
    local = folder.path / "udp-cells"
    sender.fetch(remote, local)
    receivers = {}
    for name in RECEIVER_NODES:
        rows = read_csv(local / cell.id / f"receiver-{name}.csv")
        receivers[name] = rows[0] if rows else None
    sender_rows = read_csv(local / cell.id / "sender.csv")
    if cell.model == "broadcast":
        destinations = {name: f"{prefix}.255" for name in RECEIVER_NODES}
    else:
        destinations = {name: f"{prefix}.{octet}" for name, octet in RECEIVER_NODES.items()}
    rows = merge_cell(cell, destinations, receivers, sender_rows, problems)
    for row in rows:  # the sender's container and this receiver's
        row.update(figures({"sender": samples[SENDER_NODE], "receiver": samples[str(row["receiver"])]}))
    return rows


def _run_programs(lab: Lab, cell: UdpCell, runs: dict[str, ReceiverRun], remote: str) -> dict[str, str]:
    """Start the receivers, run the sender, wait for the receivers; returns the problems seen (by node)."""
    prefix = lab.settings.net_prefix
    sender = lab.node(SENDER_NODE)
    budget, receiver_limit = time_limits(cell)
    for run in runs.values():
        run.start()
    problems: dict[str, str] = {}
    deadline = time.monotonic() + READY_WAIT
    for name, run in runs.items():
        if not run.wait_ready(max(0.0, deadline - time.monotonic())):
            problems[name] = run.finished_with() or f"{name}: receiver did not start listening in {READY_WAIT:g}s"

    command = [
        "python", "-m", "app.udp_sender", "--model", cell.model, "--port", str(UDP_PORT),
        "--broadcast", f"{prefix}.255", "--payload", str(cell.payload), "--framing", cell.framing,
        "--rate", f"{cell.rate:g}", "--transfer-id", str(cell.number), "--timeout", f"{budget:g}",
        "--csv", f"{remote}/sender.csv", "--cell", str(cell.number), "--quiet",
    ]  # fmt: skip
    for address in dict.fromkeys(f"{prefix}.{octet}" for octet in RECEIVER_NODES.values()):
        command += ["--dest", address]
    try:
        result = sender.exec(command, time_limit=budget + 30)
        if result.exit_code not in EXIT_OK:
            tail = result.output.strip().splitlines()[-1:] or [""]
            problems["sender"] = f"sender exited {result.exit_code}: {tail[0][:300]}"
    except LabError as exc:
        problems["sender"] = str(exc)

    for name, run in runs.items():
        problem = run.join(receiver_limit + 20)
        if problem and name not in problems:
            problems[name] = problem
    return problems


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_udp(lab: Lab, folder: RunFolder, cells: list[UdpCell], say: Callable[[str], None]) -> list[dict[str, object]]:
    """Run every UDP cell; write udp.csv and udp_summary.csv; return the rows of udp.csv.

    Interrupted (Ctrl-C) or failed on the way, it stops the sender and the
    receivers in the nodes before passing the exception on.
    """
    check_cells(cells)
    stop_udp_processes(lab)  # a killed earlier run may have left some running, holding port 8888
    merged, summary = folder.path / "udp.csv", folder.path / "udp_summary.csv"
    if merged.exists():  # a resumed run: its UDP cells run again from the start
        say("UDP cells of this run are run again; the earlier UDP rows are replaced")
        merged.unlink()
        summary.unlink(missing_ok=True)
        shutil.rmtree(folder.path / "udp-cells", ignore_errors=True)
    say(f"UDP: {len(cells)} cells, {SENDER_NODE} sends to {' and '.join(RECEIVER_NODES)} on port {UDP_PORT}")
    rows: list[dict[str, object]] = []
    started = time.monotonic()
    failures = 0
    try:
        with CsvLog(str(merged), UDP_FIELDS) as log:
            for done, cell in enumerate(cells, start=1):
                cell_rows = run_udp_cell(lab, folder, cell)
                for row in cell_rows:
                    log.write(row)
                rows += cell_rows
                failures += sum(row.get("intact") != "true" for row in cell_rows)
                elapsed = time.monotonic() - started
                eta = elapsed / done * (len(cells) - done)
                say(
                    f"[{done:>3}/{len(cells)}] {cell.id:<28} {describe_cell(cell_rows)}"
                    f"  | elapsed {_clock(elapsed)} eta {_clock(eta)} failures {failures}"
                )
    except (KeyboardInterrupt, LabError) as exc:
        # The programs in the nodes do not notice that the orchestrator is gone (they stop only
        # at their own time limits), so stop them now: none may still hold port 8888 or send.
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        say(f"\n{why}: stopping the UDP sender and receivers in the nodes…")
        try:
            stop_udp_processes(lab)
        except LabError:
            pass  # e.g. a node is gone: the original exception says more
        raise
    with CsvLog(str(summary), SUMMARY_FIELDS) as log:
        for row in summarize_udp(rows):
            log.write(row)
    return rows
