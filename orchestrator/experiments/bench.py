"""Benchmark: how close the lab's file server comes to the limits of the machine.

Measured in one run, between the same two containers (alpine-2 -> alpine-1):

* raw TCP throughput (``app.speedtest`` sink and sender, no protocol);
* the server node's base64 decode speed and SHA-256 speed;
* single-client 100 MiB upload and download goodput through the lab server
  (median of several runs);
* 50 clients x 100 MiB aggregate goodput, for each server pool mode.

The limit of an upload is the slowest of raw TCP (counted in file bytes:
base64 makes the wire 4/3 larger), base64 decoding and SHA-256; the limit
of a download is the slower of raw TCP and SHA-256 (the client hashes).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from statistics import median
from typing import Any

from tabulate import tabulate

from app import contract
from orchestrator.errors import NodeError
from orchestrator.experiments.base import CellResult, Experiment, Summary
from orchestrator.experiments.tcp.cells import TcpCell
from orchestrator.experiments.tcp.experiment import restore_default_server, run_tcp_cell
from orchestrator.experiments.tcp.rows import CLIENTS, SERVER, SUMMARY
from orchestrator.lab import Lab
from orchestrator.matrix import Section
from orchestrator.rows import Column, Table
from orchestrator.store import RunFolder

MIB = 2**20
VOLUME = 100 * MIB
SINGLES = 3  # single-client transfers per operation; their median is the figure
# bench.csv: one row per figure a cell measured (it lists the finished cells).
BENCH = Table("bench.csv", (Column("cell_id", str, "key"), Column("figure", str, "key"), Column("value")))


@dataclass(frozen=True)
class Limits:
    raw_tcp_mibps: float
    base64_decode_mibps: float
    sha256_mibps: float

    @property
    def upload(self) -> float:
        return min(self.raw_tcp_mibps * 3 / 4, self.base64_decode_mibps, self.sha256_mibps)

    @property
    def download(self) -> float:
        return min(self.raw_tcp_mibps, self.sha256_mibps)


def _last_json(output: str) -> dict[str, float]:
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise NodeError(f"no result in speedtest output: {output[-300:]!r}")


def measure_raw_tcp(lab: Lab, seconds: float = 10) -> float:
    """MiB/s of one plain TCP stream from alpine-2 to alpine-1."""
    server, client = lab.node(contract.SERVER_NODE), lab.node(contract.CLIENT_NODE)
    ready = threading.Event()

    def run_sink() -> None:
        sink = contract.speedtest_command("sink", port=contract.SPEEDTEST_PORT, seconds=60)
        server.exec(sink, time_limit=90, on_line=lambda line: line == "listening" and ready.set())
        ready.set()

    thread = threading.Thread(target=run_sink, daemon=True)
    thread.start()
    if not ready.wait(30):
        raise NodeError(f"the speedtest sink on {contract.SERVER_NODE} did not start")
    send = contract.speedtest_command(
        "send", host=lab.address(contract.SERVER_NODE), port=contract.SPEEDTEST_PORT, bytes="8GiB", seconds=seconds
    )
    result = _last_json(client.check(send, time_limit=seconds + 60))
    thread.join(timeout=60)
    return result["mibps"]


@dataclass(frozen=True)
class BenchCell:
    """One measurement of the benchmark: the node's codec speed, raw TCP, or one goodput cell."""

    number: int
    measure: str  # "codec", "raw-tcp", or "goodput" (with ``tcp``)
    tcp: TcpCell | None = None
    repeat: int = 1

    @property
    def id(self) -> str:
        return self.tcp.id if self.tcp else f"{self.number:03d}-{self.measure}"


def bench_cells(singles: int = SINGLES) -> list[BenchCell]:
    """The benchmark's measurements, in the order they run."""
    plan: list[tuple[str, int, int, str, int]] = []  # op, clients, workers, pool, repeat
    for op in ("upload", "download"):
        plan += [(op, 1, 1, "thread", r) for r in range(1, singles + 1)]
        plan += [(op, 50, 50, pool, 1) for pool in ("thread", "process")]
    cells = [BenchCell(1, "codec"), BenchCell(2, "raw-tcp")]
    for number, (op, clients, workers, pool, repeat) in enumerate(plan, start=3):
        tcp = TcpCell(number, op, VOLUME, clients, workers, pool, timeout=900, server_idle_timeout=120, repeat=repeat)
        cells.append(BenchCell(number, "goodput", tcp))
    return cells


def goodput_figures(summary: dict[str, Any]) -> dict[str, object]:
    """The figures a goodput cell gives the benchmark, by their name in bench.json."""
    cell_op, clients, pool = summary["operation"], summary["client_workers"], summary["server_pool"]
    if clients == 1:
        return {f"single_{cell_op}_mibps": summary["throughput_per_client_mibps"]}
    prefix = f"many_{cell_op}_{pool}"
    return {
        f"{prefix}_aggregate_mibps": summary["aggregate_mibps"],
        f"{prefix}_server_cpu_percent": summary["server_cpu_percent"],
        f"{prefix}_server_peak_rss_mib": summary["server_peak_rss_mib"],
    }


def bench_figures(rows: list[dict[str, object]]) -> dict[str, object]:
    """bench.json from bench.csv: the limits, the median single-client goodput, the 50-client figures."""
    values: dict[str, list[float]] = {}
    for row in rows:
        if row["value"] is not None:
            values.setdefault(str(row["figure"]), []).append(float(row["value"]))  # type: ignore[arg-type]
    limits = Limits(*(values[name][-1] for name in ("raw_tcp_mibps", "base64_decode_mibps", "sha256_mibps")))
    figures: dict[str, object] = {"limits": {**limits.__dict__, "upload": limits.upload, "download": limits.download}}
    for name, found in values.items():
        if name.startswith(("single_", "many_")):
            figures[name] = median(found) if name.startswith("single_") else found[-1]
    return figures


class BenchExperiment(Experiment[BenchCell]):
    """How close the lab's file server comes to the limits of the machine (``orchestrate.py bench``)."""

    name = "bench"
    title = "Benchmark"
    programs = "clients and the server"
    tables = (CLIENTS, SERVER, SUMMARY, BENCH)
    in_matrix = False

    @staticmethod
    def parse(section: Any, where: str) -> Section:
        return Section(bench_cells())  # the benchmark's measurements are fixed

    def prepare(self, lab: Lab) -> None:
        lab.wait_server_ready()

    def run_cell(self, lab: Lab, folder: RunFolder, cell: BenchCell) -> CellResult:
        rows: dict[Table, list[dict[str, object]]] = {}
        if cell.measure == "codec":
            lab.say(f"measuring base64 and SHA-256 speed on {contract.SERVER_NODE}")
            codec = _last_json(lab.node(contract.SERVER_NODE).check(contract.speedtest_command("codec")))
            found: dict[str, object] = {k: codec[k] for k in ("base64_decode_mibps", "sha256_mibps")}
        elif cell.measure == "raw-tcp":
            lab.say(f"measuring raw TCP {contract.CLIENT_NODE} -> {contract.SERVER_NODE}")
            found = {"raw_tcp_mibps": measure_raw_tcp(lab)}
        else:
            assert cell.tcp is not None
            rows = run_tcp_cell(lab, folder, cell.tcp)
            summary = rows[SUMMARY][0]
            if summary["clients_failed"] or summary["server_failed"]:
                raise NodeError(f"benchmark cell {cell.id} had failed transfers: {summary['errors']}")
            found = goodput_figures(summary)
        rows[BENCH] = [{"cell_id": cell.id, "figure": name, "value": value} for name, value in found.items()]
        line = ", ".join(f"{name} {value:.1f}" if isinstance(value, float) else f"{name} {value}"
                         for name, value in found.items())  # fmt: skip
        return CellResult(rows, line)

    def cleanup(self, lab: Lab) -> None:
        restore_default_server(lab)

    def summarize(self, folder: RunFolder, lang: str = "en") -> Summary:
        figures = bench_figures(BENCH.read(folder.path))
        (folder.path / "bench.json").write_text(json.dumps(figures, indent=2) + "\n")
        table = render_bench(figures)
        (folder.path / "bench.md").write_text(table + "\n")
        return Summary(table, table, 0, files=[folder.path / "bench.json", folder.path / "bench.md"])


def render_bench(figures: dict[str, object]) -> str:
    """The figures and their ratios to each operation's limit, as a table."""
    limits = figures["limits"]
    assert isinstance(limits, dict)
    up, down = limits["upload"], limits["download"]
    rows = [
        ["raw TCP, one stream", limits["raw_tcp_mibps"], "", ""],
        ["base64 decode (file bytes)", limits["base64_decode_mibps"], "", ""],
        ["SHA-256", limits["sha256_mibps"], "", ""],
        ["upload limit: min(raw TCP x 3/4, decode, SHA-256)", up, "", ""],
        ["download limit: min(raw TCP, SHA-256)", down, "", ""],
        ["1 client x 100 MiB upload (median)", figures["single_upload_mibps"], up, "target >= 0.6"],
        ["1 client x 100 MiB download (median)", figures["single_download_mibps"], down, "target >= 0.8"],
    ]
    for op, limit in (("upload", up), ("download", down)):
        single = figures[f"single_{op}_mibps"]
        for pool in ("thread", "process"):
            aggregate = figures[f"many_{op}_{pool}_aggregate_mibps"]
            note = f"{float(aggregate) / float(single):.2f}x single client"  # type: ignore[arg-type]
            rows.append([f"50 x 100 MiB {op}, {pool} pool: aggregate", aggregate, limit, note])
    body = [
        [name, f"{float(value):.1f}", f"{float(value) / float(limit):.2f}" if limit else "", note]  # type: ignore[arg-type]
        for name, value, limit, note in rows
    ]
    return tabulate(body, headers=["measure", "MiB/s", "ratio to limit", "note"], tablefmt="github")
