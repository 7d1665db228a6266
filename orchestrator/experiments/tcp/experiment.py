"""The TCP file-server experiment: one cell at a time on the lab.

For each cell: check there is disk space for it, recreate the server with
the cell's pool mode and size, wait until it accepts, seed the file to
download if needed, run the stress client on alpine-2 while sampling both
containers, stop the server (so every outcome row is written), copy the
cell's files out of the results volume and return its rows: the clients'
(clients.csv), the server's (server.csv) and the cell's summary
(summary.csv, which lists the finished cells).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from app import contract
from app.sizes import format_size
from orchestrator.errors import LabError
from orchestrator.experiments.base import CellResult, Experiment, Summary
from orchestrator.experiments.tcp.cells import TcpCell, expand_tcp
from orchestrator.experiments.tcp.clients import SubmissionClient, client_rows_from_server
from orchestrator.experiments.tcp.rows import (
    CLIENTS,
    SERVER,
    SUMMARY,
    failures,
    render_table,
    summarize_cell,
    write_laporan,
)
from orchestrator.experiments.tcp.servers import STORAGE, ReferenceServer, Server, ServerDown, SubmissionServer
from orchestrator.lab import ExecResult, Lab
from orchestrator.lab.telemetry import figures
from orchestrator.matrix import Section
from orchestrator.rows import read_raw
from orchestrator.store import RunFolder, RunState
from orchestrator.submission import load_submission
from orchestrator.tables import TERMINAL_WIDTH

STRESS_EXIT_OK = (0, 3)  # 3: the client ran, and some transfers failed (they are in its CSV)
DISK_MARGIN = 256 * 2**20  # keep this much free beyond what a cell needs (an eighth of a smaller disk)
DiskSpace = tuple[int, int]  # (free, total) bytes of one file system
CLIENT_BACKSTOP = 120  # seconds beyond the transfers' deadline before the stress client is killed


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


def check_disk(lab: Lab, cell: TcpCell, keep_downloads: bool, host_dir: Path, storage: str = STORAGE) -> None:
    """Refuse to start a cell that would fill a disk, with a clear message."""
    statvfs = "import os, sys; s = os.statvfs(sys.argv[1]); print(s.f_bavail * s.f_frsize, s.f_blocks * s.f_frsize)"
    free, total = lab.node(contract.SERVER_NODE).check(["python", "-I", "-c", statvfs, storage]).split()
    host = shutil.disk_usage(host_dir)
    problem = disk_problem(cell, keep_downloads, (int(free), int(total)), (host.free, host.total))
    if problem:
        raise LabError(problem)


def missing_rows_for(cell: TcpCell, rows: list[dict[str, str]], result: ExecResult, backstop: float) -> list:
    """The client rows of a cell, with a failed row for every client that wrote none."""
    cause = client_failure(result, backstop)
    if cause or len(rows) < cell.clients:
        return rows + missing_rows(cell, rows, cause or "the stress client wrote no row for this client")
    return rows


def stress_command(lab: Lab, cell: TcpCell, remote: str, keep_downloads: bool, server: Server) -> list[str]:
    """The stress client's command line for one cell."""
    return contract.stress_client_command(
        op=cell.op, size=cell.volume, clients=cell.clients, pool=cell.client_pool,
        host=lab.address(contract.SERVER_NODE), port=server.port(cell), timeout=cell.timeout,
        csv=f"{remote}/clients.csv", cell=cell.number, server_workers=cell.server_workers,
        server_pool=cell.server_pool, quiet=True, protocol=None if cell.protocol == "stream" else cell.protocol,
        keep=f"{remote}/downloads" if keep_downloads and cell.op == "download" else None, **server.stress_options(),
    )  # fmt: skip


def run_tcp_cell(
    lab: Lab,
    folder: RunFolder,
    cell: TcpCell,
    keep_downloads: bool = False,
    server: Server | None = None,
    own_client: SubmissionClient | None = None,
) -> dict[Any, list]:
    """Run one cell; returns its rows of clients.csv, server.csv and summary.csv (in that order).

    ``server``: a submission's server instead of the lab's; ``own_client``: a student's client instead of the
    lab's stress client (the lab's server's records are then the truth of what arrived).
    """
    server = server or ReferenceServer()
    remote = folder.cell_container_dir(cell)
    local = folder.cell_dir(cell)
    client = lab.node(contract.CLIENT_NODE)
    client.check(["rm", "-rf", remote])  # a cell interrupted earlier starts afresh
    client.check(["mkdir", "-p", remote])
    try:
        node = server.start(lab, cell, f"{remote}/server.csv")
    except ServerDown as exc:  # a submission's server that does not start fails its cell; the run goes on
        client_rows = missing_rows(cell, [], f"the server did not start: {' '.join(str(exc).split())[:300]}")
        return {
            CLIENTS: [{"cell_id": cell.id, **row} for row in client_rows],
            SUMMARY: [summarize_cell(cell, client_rows, None)],
        }
    check_disk(lab, cell, keep_downloads, folder.path, server.storage)
    if cell.op == "download":  # the file to download: same generator, same bytes as the client's reference
        node.check(contract.genfile_command(size=cell.volume, dir=server.storage, verify=True))
    backstop = cell.timeout + CLIENT_BACKSTOP
    if own_client is not None:
        expected = own_client.prepare(lab, cell)  # the client's {file}, made before it starts
        with lab.sampling({"server": node}) as samples:
            _, why = own_client.run(lab, cell, local, backstop)
        _, peak = server.finish(lab, node, cell)
        lab.node(contract.CLIENT_NODE).fetch(remote, local.parent)
        measured = read_raw(local / "server.csv")
        client_rows = client_rows_from_server(cell, measured, expected, why or "its request never reached the server")
    else:
        with lab.sampling({"server": node, "client": client}) as samples:
            # Bounded: every transfer has its own deadline; this is the backstop.
            command = stress_command(lab, cell, remote, keep_downloads, server)
            result = client.exec(command, time_limit=backstop, limit_ok=True)
        measured, peak = server.finish(lab, node, cell)  # stops the server: its last outcome rows are written
        client.fetch(remote, local.parent)
        client_rows = missing_rows_for(cell, read_raw(local / "clients.csv"), result, backstop)
        if server.keeps_log:
            measured = read_raw(local / "server.csv")
    server_rows = [{"cell": str(cell.number), **row} for row in measured]
    unmeasured = not server.keeps_log and cell.op == "download"  # a submission's side of a download
    summary = summarize_cell(cell, client_rows, None if unmeasured else server_rows, figures(samples))
    if peak is not None:  # measured from outside, in the server's container
        summary["server_peak_rss_mib"] = round(peak / 1024, 1)
    return {
        CLIENTS: [{"cell_id": cell.id, **row} for row in client_rows],
        SERVER: [{"cell_id": cell.id, **row} for row in server_rows],
        SUMMARY: [summary],
    }


def describe(summary: dict[str, Any]) -> str:
    """A finished cell's figures for the progress line."""
    time_s, speed = summary["time_per_client_mean_s"], summary["throughput_per_client_mibps"]
    figures = f"{time_s:.3f} s/client {speed:8.2f} MiB/s" if time_s is not None else "no transfer succeeded"
    return (
        f"clients {summary['clients_ok']}/{summary['clients_failed']}  "
        f"server {summary['server_ok']}/{summary['server_failed']}  {figures}"
    )


class TcpExperiment(Experiment[TcpCell]):
    """The concurrent TCP file server under 1..N concurrent clients (the course's 108-cell matrix)."""

    name = "tcp"
    title = "TCP file server"
    programs = "clients and the server"
    tables = (CLIENTS, SERVER, SUMMARY)

    def __init__(self, state: RunState | None = None) -> None:
        super().__init__(state)
        self.server: Server = ReferenceServer()
        self.own_client: SubmissionClient | None = None
        if state and state.server:  # --server: a student's submission instead of the lab's server
            self.server = SubmissionServer(load_submission(Path(state.server["folder"])))
        if state and state.client:  # --client: a student's own client instead of the lab's stress client
            self.own_client = SubmissionClient(load_submission(Path(state.client["folder"])))

    @staticmethod
    def parse(section: Any, where: str) -> Section:
        return expand_tcp(section, where)

    def adapt(self, cells: list[TcpCell], say: Any) -> list[TcpCell]:
        if not isinstance(self.server, SubmissionServer):
            return cells
        spec = self.server.spec
        kept, notes = submission_cells(cells, spec.pools, spec.workers, spec.protocol)
        for note in notes:
            say(f"{self.server.name}: {note}")
        return kept

    def prepare(self, lab: Lab) -> None:
        stop_stress_clients(lab)  # a killed earlier run may have left a client running

    def run_cell(self, lab: Lab, folder: RunFolder, cell: TcpCell) -> CellResult:
        keep = bool(self.state and self.state.keep_downloads)
        rows = run_tcp_cell(lab, folder, cell, keep, self.server, self.own_client)
        summary = rows[SUMMARY][0]
        return CellResult(rows, describe(summary), failures([summary]))

    def stop_programs(self, lab: Lab) -> None:
        stop_stress_clients(lab)

    def cleanup(self, lab: Lab) -> None:
        restore_default_server(lab, self.server)

    def summarize(self, folder: RunFolder, lang: str = "en") -> Summary:
        rows = SUMMARY.read(folder.path)
        files = []
        if lang == "id":
            files = write_laporan(folder.path, rows)
        return Summary(
            markdown=render_table(rows, lang=lang),
            terminal=render_table(rows, tablefmt="simple", lang=lang, width=TERMINAL_WIDTH),
            failures=failures(rows),
            where=f"{folder.path / SUMMARY.file} (errors)",
            files=files,
        )


def submission_cells(
    cells: list[TcpCell], pools: tuple[str, ...], workers: int | None, protocol: str = "stream"
) -> tuple[list[TcpCell], list[str]]:
    """The cells a submission's server can run: its pool modes, its protocol, and its own worker count if fixed.

    A server speaks one protocol: the cells of the matrix's first protocol are run in it. A server whose
    worker count is not a parameter is measured at the count it has: the matrix's worker counts collapse
    into that one (the cells of the first count, relabelled), and the notes say so.
    """
    notes = []
    kept = [cell for cell in cells if cell.server_pool in pools]
    if len(kept) < len(cells):
        notes.append(f"runs only its pool modes ({', '.join(pools)}): {len(cells) - len(kept)} cells left out")
    first = kept[0].protocol if kept else protocol
    one = [replace(cell, protocol=protocol) for cell in kept if cell.protocol == first]
    if len(one) < len(kept) or first != protocol:
        notes.append(f"speaks the {protocol} protocol: the matrix's {first} cells run in it, the others are left out")
    kept = one
    if workers is not None:
        fewest = min((cell.server_workers for cell in kept), default=workers)
        fixed = [replace(cell, server_workers=workers) for cell in kept if cell.server_workers == fewest]
        if len(fixed) < len(kept) or fewest != workers:
            notes.append(f"has {workers} workers, not a parameter: every cell runs with {workers} workers")
        kept = fixed
    return kept, notes


def restore_default_server(lab: Lab, server: Server | None = None) -> None:
    """Back to the lab's own nodes and default server; a failure is a warning (the cells' rows are stored)."""
    try:
        lab.end_stand_in(contract.CLIENT_NODE)  # alpine-2 itself again, if a student's client stood in
        (server or ReferenceServer()).restore(lab)
    except LabError as exc:
        lab.say(f"warning: could not restore the default server: {exc}")


def stop_stress_clients(lab: Lab) -> None:
    """No stress client left running in the client node."""
    # "[a]pp" matches the client but not this command line itself (nor its `timeout` wrapper).
    lab.stop_programs(contract.CLIENT_NODE, "[a]pp.stress_client")
