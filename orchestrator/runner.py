"""Run a matrix's TCP cells on a running lab, one cell at a time.

For each cell: check there is disk space for it, recreate the server with
the cell's pool mode and size, wait until it accepts, seed the file to
download if needed, run the stress client on alpine-2 while sampling both
containers, stop the server (so every outcome row is written), copy the
cell's files out of the results volume and append its rows to the run's
CSV files. A cell is either wholly in the CSV files or not at all, so an
interrupted run resumes cleanly (see ``cli.py --resume``).
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.sizes import format_size
from orchestrator.errors import LabError
from orchestrator.matrix import TcpCell
from orchestrator.nodes import ExecResult, Lab
from orchestrator.results import RunFolder, read_csv
from orchestrator.settings import CLIENT_NODE, JSON_PORT, SERVER_NODE, SERVER_PORT
from orchestrator.summary import summarize_cell
from orchestrator.telemetry import figures, sampling

STRESS_EXIT_OK = (0, 3)  # 3: the client ran, and some transfers failed (they are in its CSV)
DISK_MARGIN = 256 * 2**20  # keep this much free beyond what a cell needs (an eighth of a smaller disk)
DiskSpace = tuple[int, int]  # (free, total) bytes of one file system
CLIENT_BACKSTOP = 120  # seconds beyond the transfers' deadline before the stress client is killed


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Progress:
    """Cells done of total, the current cell, elapsed, ETA and failures so far.

    On a terminal the current cell is shown on a line that is rewritten in
    place; elsewhere (CI, a log file) only one plain line per finished cell.
    """

    total: int
    say: Callable[[str], None]
    done: int = 0  # includes cells finished by an earlier, resumed attempt
    live: bool = field(default_factory=lambda: sys.stdout.isatty())
    started: float = field(default_factory=time.monotonic)
    ran: int = 0
    failed_transfers: int = 0

    def _times(self) -> str:
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.ran * (self.total - self.done) if self.ran else None
        return f"elapsed {_clock(elapsed)} eta {_clock(eta) if eta is not None else '?:??:??'}"

    def cell_started(self, cell: TcpCell) -> None:
        if self.live:
            self.say(f"\r\033[K[{self.done + 1:>3}/{self.total}] {cell.id} running… | {self._times()}\r")

    def cell_done(self, summary: Mapping[str, object], cell: TcpCell) -> None:
        self.done += 1
        self.ran += 1
        self.failed_transfers += int(summary["clients_failed"]) + int(summary["server_failed"])  # type: ignore[call-overload]
        time_s = summary["time_per_client_mean_s"]
        speed = summary["throughput_per_client_mibps"]
        figures = f"{time_s:.3f} s/client {speed:8.2f} MiB/s" if time_s is not None else "no transfer succeeded"
        prefix = "\r\033[K" if self.live else ""
        self.say(
            f"{prefix}[{self.done:>3}/{self.total}] {cell.id:<37} clients {summary['clients_ok']}/"
            f"{summary['clients_failed']}  server {summary['server_ok']}/{summary['server_failed']}  {figures}"
            f"  | {self._times()} failures {self.failed_transfers}"
        )


def client_failure(result: ExecResult, time_limit: float) -> str | None:
    """Why the stress client as a whole failed (its rows may be missing), or None if it ran to its end."""
    if result.timed_out:
        return f"killed after deadline ({time_limit:g}s)"
    if result.exit_code in STRESS_EXIT_OK:
        return None
    if result.exit_code is None:
        return "the client container stopped while the stress client ran"
    tail = result.output.strip().splitlines()[-1:] or [""]
    return f"stress client exited {result.exit_code}: {tail[0][:200]}"


def missing_rows(cell: TcpCell, rows: list[dict[str, str]], reason: str) -> list[dict[str, str]]:
    """A failed row, with ``reason``, for every client that wrote none (the stress client died or was killed)."""
    seen = {row.get("client") for row in rows}
    now = f"{time.time():.6f}"
    labels = {
        "cell": str(cell.number), "op": cell.op, "volume_bytes": str(cell.volume), "clients": str(cell.clients),
        "client_pool": cell.client_pool, "server_workers": str(cell.server_workers), "server_pool": cell.server_pool,
    }  # fmt: skip
    failed = {"start": now, "end": now, "seconds": "0", "status": "error", "error": reason}
    return [{**labels, "client": str(i), **failed} for i in range(1, cell.clients + 1) if str(i) not in seen]


def disk_needed(cell: TcpCell, keep_downloads: bool = False) -> int:
    """Bytes of volume space a cell may use at its peak.

    Uploads: one temporary file per concurrent client on the server, the
    stored file, the client's source and its base64 copy. Downloads: the server's source,
    the client's reference, and every received copy if they are kept.
    """
    if cell.op == "upload":  # + the client's cached base64 copy, 4/3 of the file
        return cell.volume * (cell.clients + 2) + cell.volume * 4 // 3
    return cell.volume * (2 + (cell.clients if keep_downloads else 0))


def host_disk_needed(cell: TcpCell, keep_downloads: bool = False) -> int:
    """Bytes the host's results folder receives from a cell: its CSV files, and kept downloads."""
    return cell.volume * cell.clients if keep_downloads and cell.op == "download" else 0


def disk_problem(cell: TcpCell, keep_downloads: bool, docker: DiskSpace, host: DiskSpace) -> str | None:
    """Why a cell would fill a disk (Docker's storage, or the host's copy of the results), or None."""
    for where, need, (free, total) in (
        ("Docker's storage", disk_needed(cell, keep_downloads), docker),
        ("the results folder's disk", host_disk_needed(cell, keep_downloads), host),
    ):
        need += min(DISK_MARGIN, total // 8)
        if free < need:
            return (
                f"cell {cell.id} needs about {format_size(need)} of free disk in {where} "
                f"but only {format_size(free)} is free. Free some space or use smaller volumes or fewer clients."
            )
    return None


def check_disk(lab: Lab, cell: TcpCell, keep_downloads: bool, host_dir: Path) -> None:
    """Refuse to start a cell that would fill a disk, with a clear message."""
    statvfs = "import os; s = os.statvfs('/srv/files'); print(s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize)"
    free, total = lab.node(SERVER_NODE).check(["python", "-c", statvfs]).split()
    host = shutil.disk_usage(host_dir)
    problem = disk_problem(cell, keep_downloads, (int(free), int(total)), (host.free, host.total))
    if problem:
        raise LabError(problem)


def stop_stray_processes(lab: Lab) -> None:
    """After an interruption: no stress client left running in the client node."""
    # "[a]pp" matches the client but not this command line itself (nor its `timeout` wrapper).
    lab.node(CLIENT_NODE).exec(["pkill", "-TERM", "-f", "[a]pp.stress_client"], time_limit=30)


def run_tcp_cell(lab: Lab, folder: RunFolder, cell: TcpCell, keep_downloads: bool = False) -> dict[str, object]:
    """Run one cell and return its summary row; its CSV rows go into ``folder``."""
    remote = folder.cell_container_dir(cell)
    client = lab.node(CLIENT_NODE)
    client.check(["rm", "-rf", remote])  # a cell interrupted earlier starts afresh
    client.check(["mkdir", "-p", remote])
    lab.restart_server(cell.server_pool, cell.server_workers, f"{remote}/server.csv", cell.server_idle_timeout)
    check_disk(lab, cell, keep_downloads, folder.path)
    server = lab.node(SERVER_NODE)
    if cell.op == "download":  # the file to download: same generator, same bytes as the client's reference
        server.check(["python", "-m", "app.genfile", "--size", str(cell.volume), "--dir", "/srv/files", "--verify"])
    port = JSON_PORT if cell.protocol == "json" else SERVER_PORT
    command = [
        "python", "-m", "app.stress_client", "--op", cell.op, "--size", str(cell.volume),
        "--clients", str(cell.clients), "--pool", cell.client_pool,
        "--host", lab.settings.server_ip, "--port", str(port), "--timeout", f"{cell.timeout:g}",
        "--csv", f"{remote}/clients.csv", "--cell", str(cell.number),
        "--server-workers", str(cell.server_workers), "--server-pool", cell.server_pool, "--quiet",
    ]  # fmt: skip
    if cell.protocol != "stream":
        command += ["--protocol", cell.protocol]
    if keep_downloads and cell.op == "download":
        command += ["--keep", f"{remote}/downloads"]
    containers = {"server": server.container.id, "client": client.container.id}
    backstop = cell.timeout + CLIENT_BACKSTOP
    with sampling(lab.client, containers) as samples:
        # Bounded: every transfer has its own deadline; this is the backstop.
        result = client.exec(command, time_limit=backstop, limit_ok=True)
    server.stop()  # flushes the last outcome rows
    client.fetch(remote, folder.cell_dir(cell).parent)
    client_rows = read_csv(folder.cell_dir(cell) / "clients.csv")
    cause = client_failure(result, backstop)
    if cause or len(client_rows) < cell.clients:
        client_rows += missing_rows(cell, client_rows, cause or "the stress client wrote no row for this client")
    server_rows = [{"cell": str(cell.number), **row} for row in read_csv(folder.cell_dir(cell) / "server.csv")]
    summary = summarize_cell(cell, client_rows, server_rows, figures(samples))
    folder.append_cell(cell.id, client_rows, server_rows, summary)
    return summary


def run_tcp(
    lab: Lab,
    folder: RunFolder,
    cells: list[TcpCell],
    say: Callable[[str], None],
    finished: int = 0,
    keep_downloads: bool = False,
) -> list[dict[str, object]]:
    """Run ``cells`` (``finished`` more were done by an earlier attempt); then restore the default server."""
    progress = Progress(len(cells) + finished, say, done=finished)
    summaries = []
    stop_stray_processes(lab)  # a killed earlier run may have left a client running
    try:
        for cell in cells:
            progress.cell_started(cell)
            summary = run_tcp_cell(lab, folder, cell, keep_downloads)
            summaries.append(summary)
            progress.cell_done(summary, cell)
    except KeyboardInterrupt:
        say("\ninterrupted: stopping the clients and the server in the nodes…")
        try:
            stop_stray_processes(lab)
        except LabError:
            pass
        raise
    finally:
        try:
            lab.compose.up([SERVER_NODE])  # back to the default server of docker-compose.yml
        except LabError as exc:
            say(f"warning: could not restore the default server: {exc}")
    return summaries
