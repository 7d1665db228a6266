"""Run a matrix's TCP cells on a running lab, one cell at a time.

For each cell: seed the server's download file if needed, recreate the
server with the cell's pool mode and size, wait until it accepts, run the
stress client on alpine-2, stop the server (so every outcome row is
written), copy the cell's files out of the results volume and summarise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from orchestrator.errors import LabError
from orchestrator.matrix import TcpCell
from orchestrator.nodes import Lab
from orchestrator.results import RunFolder, read_csv
from orchestrator.settings import CLIENT_NODE, SERVER_NODE, SERVER_PORT
from orchestrator.summary import summarize_cell

STRESS_EXIT_OK = (0, 3)  # 3: the client ran, and some transfers failed (they are in its CSV)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Progress:
    """Cells done of total, elapsed and ETA; one line per cell."""

    total: int
    say: Callable[[str], None]
    started: float = field(default_factory=time.monotonic)
    done: int = 0
    failed_transfers: int = 0

    def cell_done(self, summary: Mapping[str, object], cell: TcpCell) -> None:
        self.done += 1
        failed = int(summary["clients_failed"]) + int(summary["server_failed"])  # type: ignore[call-overload]
        self.failed_transfers += failed
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        time_s = summary["time_per_client_mean_s"]
        speed = summary["throughput_per_client_mean_mibps"]
        figures = f"{time_s:.3f} s/client {speed:8.2f} MiB/s" if time_s is not None else "no transfer succeeded"
        self.say(
            f"[{self.done:>3}/{self.total}] {cell.id:<34} clients {summary['clients_ok']}/{summary['clients_failed']}"
            f"  server {summary['server_ok']}/{summary['server_failed']}  {figures}"
            f"  | elapsed {_clock(elapsed)} eta {_clock(eta)} failures {self.failed_transfers}"
        )


def _missing_rows(cell: TcpCell, rows: list[dict[str, str]], reason: str) -> list[dict[str, str]]:
    """A failed row for every client the stress client did not report (it crashed)."""
    seen = {row.get("client") for row in rows}
    now = f"{time.time():.6f}"
    labels = {
        "cell": str(cell.number), "op": cell.op, "volume_bytes": str(cell.volume), "clients": str(cell.clients),
        "client_pool": cell.client_pool, "server_workers": str(cell.server_workers), "server_pool": cell.server_pool,
    }  # fmt: skip
    failed = {"start": now, "end": now, "seconds": "0", "status": "error", "error": reason}
    return [{**labels, "client": str(i), **failed} for i in range(1, cell.clients + 1) if str(i) not in seen]


def run_tcp_cell(lab: Lab, folder: RunFolder, cell: TcpCell) -> dict[str, object]:
    """Run one cell and return its summary row; its CSV rows go into ``folder``."""
    remote = folder.cell_container_dir(cell)
    client = lab.node(CLIENT_NODE)
    client.check(["mkdir", "-p", remote])
    lab.restart_server(cell.server_pool, cell.server_workers, f"{remote}/server.csv", cell.server_idle_timeout)
    if cell.op == "download":  # the file to download: same generator, same bytes as the client's reference
        genfile = ["python", "-m", "app.genfile", "--size", str(cell.volume), "--dir", "/srv/files"]
        lab.node(SERVER_NODE).check(genfile)
    command = [
        "python", "-m", "app.stress_client", "--op", cell.op, "--size", str(cell.volume),
        "--clients", str(cell.clients), "--pool", cell.client_pool,
        "--host", lab.settings.server_ip, "--port", str(SERVER_PORT), "--timeout", f"{cell.timeout:g}",
        "--csv", f"{remote}/clients.csv", "--cell", str(cell.number),
        "--server-workers", str(cell.server_workers), "--server-pool", cell.server_pool, "--quiet",
    ]  # fmt: skip
    # Bounded: every transfer has its own deadline; this is the backstop.
    result = client.exec(command, time_limit=cell.timeout + 120)
    lab.node(SERVER_NODE).container.stop(timeout=15)  # flushes the last outcome rows
    client.fetch(remote, folder.cell_dir(cell).parent)
    client_rows = read_csv(folder.cell_dir(cell) / "clients.csv")
    if result.exit_code not in STRESS_EXIT_OK or len(client_rows) < cell.clients:
        tail = result.output.strip().splitlines()[-1:] or [""]
        client_rows += _missing_rows(cell, client_rows, f"stress client exited {result.exit_code}: {tail[0][:200]}")
    server_rows = [{"cell": str(cell.number), **row} for row in read_csv(folder.cell_dir(cell) / "server.csv")]
    summary = summarize_cell(cell, client_rows, server_rows)
    folder.append("clients.csv", client_rows)
    folder.append("server.csv", server_rows)
    folder.append("summary.csv", [summary])
    return summary


def run_tcp(lab: Lab, folder: RunFolder, cells: list[TcpCell], say: Callable[[str], None]) -> list[dict[str, object]]:
    """Run every cell; afterwards leave the default server running for manual use."""
    progress = Progress(len(cells), say)
    summaries = []
    try:
        for cell in cells:
            summary = run_tcp_cell(lab, folder, cell)
            summaries.append(summary)
            progress.cell_done(summary, cell)
    finally:
        try:
            lab.compose.up([SERVER_NODE])  # back to the default server of docker-compose.yml
        except LabError as exc:
            say(f"warning: could not restore the default server: {exc}")
    return summaries
