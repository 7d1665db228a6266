"""The UDP experiment: one sender, two receivers, one cell at a time on the lab.

For each cell: start a receiver on alpine-1 and on alpine-3 (UDP 8888,
beside alpine-1's TCP file server, which keeps running), wait until both
say they are listening, run the sender on alpine-2 with the cell's model,
payload size and pacing, wait for the receivers to report (each ends at
the end marker, or after its idle timeout), copy the cell's files out of
the results volume and merge them into one row per receiver.

    results/<run-id>/
        udp.csv              one row per cell and receiver (it lists the finished cells)
        udp_summary.csv      one row per model, payload size and receiver, over the repeats
        udp-cells/<cell>/    sender.csv, receiver-<node>.csv and each receiver's reassembled file
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from app import contract
from orchestrator.errors import LabError
from orchestrator.experiments.base import CellResult, Experiment, Summary
from orchestrator.experiments.udp.cells import UdpCell, expand_udp
from orchestrator.experiments.udp.rows import (
    UDP,
    UDP_SUMMARY,
    count_failures,
    describe_cell,
    merge_cell,
    render_udp_table,
    summarize_udp,
)
from orchestrator.lab import ExecResult, Lab, Node
from orchestrator.lab.telemetry import figures
from orchestrator.matrix import Section
from orchestrator.rows import read_raw
from orchestrator.store import RunFolder
from orchestrator.tables import TERMINAL_WIDTH

READY_WAIT = contract.START_WAIT  # seconds a receiver may take to start and bind
EXIT_OK = (0, 3)  # 3: the program ran and some transfer was not intact (it is in its CSV)
AREA = "udp-cells"
# Program patterns for pkill -f: "[a]pp" matches the program but not the pkill command line itself
# (nor its `timeout` wrapper), which contain the pattern with its brackets.
UDP_PROGRAMS = {
    contract.SENDER_NODE: "[a]pp.udp_sender",
    **{name: "[a]pp.udp_receiver" for name in contract.RECEIVER_NODES},
}


def time_limits(cell: UdpCell) -> tuple[float, float]:
    """(sender --timeout, receivers' --max-time) for one cell; the matrix is checked with the same function."""
    return contract.transfer_time_limits(contract.SAMPLE_IMAGE_SIZE, cell.payload, cell.rate, cell.idle_timeout)


def stop_udp_processes(lab: Lab) -> None:
    """No UDP sender (alpine-2) or receiver (alpine-1, alpine-3) left running in the nodes."""
    for name, pattern in UDP_PROGRAMS.items():
        lab.stop_programs(name, pattern)


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


def receiver_command(cell: UdpCell, name: str, remote: str, max_time: float) -> list[str]:
    """A receiver of one cell. The sender starts right after both receivers listen, so the wait
    for its first datagram is as short as the cell's idle timeout (by hand it has no limit)."""
    return contract.udp_receiver_command(
        port=contract.UDP_PORT, framing=cell.framing, expect="sample", payload=cell.payload,
        first_wait=cell.idle_timeout, idle_timeout=cell.idle_timeout, max_time=max_time,
        csv=f"{remote}/receiver-{name}.csv", out=f"{remote}/{name}.png", cell=cell.number, label=name, quiet=True,
    )  # fmt: skip


def sender_command(lab: Lab, cell: UdpCell, remote: str, budget: float) -> list[str]:
    """The sender of one cell, to both receivers (and the subnet's broadcast address for that model)."""
    return contract.udp_sender_command(
        model=cell.model, port=contract.UDP_PORT, broadcast=lab.broadcast_address(), payload=cell.payload,
        framing=cell.framing, rate=cell.rate, transfer_id=cell.number, timeout=budget, csv=f"{remote}/sender.csv",
        cell=cell.number, quiet=True, dest=list(dict.fromkeys(lab.address(name) for name in contract.RECEIVER_NODES)),
    )  # fmt: skip


def run_udp_cell(lab: Lab, folder: RunFolder, cell: UdpCell) -> list[dict[str, object]]:
    """Run one cell; returns one row per receiver."""
    remote = folder.cell_container_dir(cell, AREA)
    sender = lab.node(contract.SENDER_NODE)
    sender.check(["rm", "-rf", remote])  # a cell run again (e.g. after --resume) starts clean
    sender.check(["mkdir", "-p", remote])
    receiver_limit = time_limits(cell)[1]
    runs = {}
    nodes = {name: lab.node(name) for name in (contract.SENDER_NODE, *contract.RECEIVER_NODES)}
    for name in contract.RECEIVER_NODES:
        command = receiver_command(cell, name, remote, receiver_limit)
        runs[name] = ReceiverRun(nodes[name], command, cell.idle_timeout + receiver_limit + 10)
    with lab.sampling(nodes) as samples:  # from the receivers' start to their end
        problems = _run_programs(lab, cell, runs, remote)
    local = folder.path / AREA
    sender.fetch(remote, local)
    receivers = {}
    for name in contract.RECEIVER_NODES:
        rows = read_raw(local / cell.id / f"receiver-{name}.csv")
        receivers[name] = rows[0] if rows else None
    sender_rows = read_raw(local / cell.id / "sender.csv")
    if cell.model == "broadcast":
        destinations = {name: lab.broadcast_address() for name in contract.RECEIVER_NODES}
    else:
        destinations = {name: lab.address(name) for name in contract.RECEIVER_NODES}
    rows = merge_cell(cell, destinations, receivers, sender_rows, problems)
    for row in rows:  # the sender's container and this receiver's
        row.update(figures({"sender": samples[contract.SENDER_NODE], "receiver": samples[str(row["receiver"])]}))
    return rows


def _run_programs(lab: Lab, cell: UdpCell, runs: dict[str, ReceiverRun], remote: str) -> dict[str, str]:
    """Start the receivers, run the sender, wait for the receivers; returns the problems seen (by node)."""
    budget, receiver_limit = time_limits(cell)
    for run in runs.values():
        run.start()
    problems: dict[str, str] = {}
    deadline = time.monotonic() + READY_WAIT
    for name, run in runs.items():
        if not run.wait_ready(max(0.0, deadline - time.monotonic())):
            problems[name] = run.finished_with() or f"{name}: receiver did not start listening in {READY_WAIT:g}s"
    try:
        result = lab.node(contract.SENDER_NODE).exec(sender_command(lab, cell, remote, budget), time_limit=budget + 30)
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


class UdpExperiment(Experiment[UdpCell]):
    """The course's UDP assignment: alpine-2 sends one file to alpine-1 and alpine-3 in each concurrency model."""

    name = "udp"
    title = "UDP sender to two receivers"
    programs = "UDP sender and receivers"
    tables = (UDP,)
    area = AREA

    @staticmethod
    def parse(section: Any, where: str) -> Section:
        return expand_udp(section, where)

    def prepare(self, lab: Lab) -> None:
        stop_udp_processes(lab)  # a killed earlier run may have left some running, holding port 8888
        receivers = " and ".join(contract.RECEIVER_NODES)
        lab.say(f"UDP: {contract.SENDER_NODE} sends to {receivers} on port {contract.UDP_PORT}")

    def run_cell(self, lab: Lab, folder: RunFolder, cell: UdpCell) -> CellResult:
        rows = run_udp_cell(lab, folder, cell)
        return CellResult({UDP: rows}, describe_cell(rows), count_failures(rows))

    def stop_programs(self, lab: Lab) -> None:
        stop_udp_processes(lab)

    def summarize(self, folder: RunFolder, lang: str = "en") -> Summary:
        rows = UDP.read(folder.path)
        UDP_SUMMARY.write(folder.path, summarize_udp(rows))
        return Summary(
            markdown=render_udp_table(rows),
            terminal=render_udp_table(rows, tablefmt="simple", width=TERMINAL_WIDTH),
            failures=count_failures(rows),
            where=f"{folder.path / UDP.file} (status/error)",
            files=[folder.path / UDP_SUMMARY.file],
        )
