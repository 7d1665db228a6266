"""The runs stored under ``results/``, for ``python orchestrate.py list``.

A folder is a run if it has ``run.json`` or ``summary.csv``. A damaged file
does not stop the listing: that run's row says what is wrong with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from orchestrator.report.load import read_rows
from orchestrator.report.manifest import iso_time
from orchestrator.report.model import ReportError


@dataclass(frozen=True)
class RunInfo:
    """One stored run, as ``list`` shows it."""

    run_id: str
    matrix: str
    started: float | None
    status: str
    tcp_cells: int
    udp_cells: int
    failures: int | None  # None: unknown (damaged files)
    report: bool


def _count_failures(path: Path) -> tuple[int, int, int]:
    """(TCP cells, UDP cells, failed transfers) from the run's CSV files."""
    summary = read_rows(path / "summary.csv")
    udp = read_rows(path / "udp.csv")
    failed = sum(int(float(r.get("clients_failed") or 0)) + int(float(r.get("server_failed") or 0)) for r in summary)
    failed += sum(1 for r in udp if r.get("intact") != "true")
    return len({r.get("cell_id") for r in summary}), len({r.get("cell_id") for r in udp}), failed


def run_info(path: Path) -> RunInfo:
    """What ``list`` says about the run folder ``path`` (never raises)."""
    status, matrix, started = "unknown", "?", None
    try:
        state = json.loads((path / "run.json").read_text(encoding="utf-8"))
        status = str(state.get("status", "unknown"))
        matrix = str(state.get("matrix", "?"))
        started = state.get("started") if isinstance(state.get("started"), int | float) else None
    except FileNotFoundError:
        status = "no run.json"
    except (ValueError, AttributeError, OSError):
        status = "damaged run.json"
    try:
        tcp, udp, failed = _count_failures(path)
    except (ReportError, ValueError):
        tcp, udp, failed = 0, 0, None
        status += ", damaged CSV"
    return RunInfo(path.name, matrix, started, status, tcp, udp, failed, (path / "report.html").is_file())


def list_runs(results: Path) -> list[RunInfo]:
    """Every run under ``results``, oldest first."""
    if not results.is_dir():
        return []
    runs = [
        run_info(p)
        for p in results.iterdir()
        if p.is_dir() and ((p / "run.json").is_file() or (p / "summary.csv").is_file())
    ]
    return sorted(runs, key=lambda r: (r.started or 0, r.run_id))


def render_runs(runs: Sequence[RunInfo], tablefmt: str = "simple") -> str:
    """The runs as a table: id, matrix, start date, status, cells, failures, report."""
    rows = [
        [r.run_id, r.matrix, iso_time(r.started) or "-", r.status, r.tcp_cells, r.udp_cells,
         "?" if r.failures is None else r.failures, "yes" if r.report else "no"]
        for r in runs
    ]  # fmt: skip
    headers = ["Run id", "Matrix", "Started", "Status", "TCP cells", "UDP cells", "Failed transfers", "Report"]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)
