"""The folder of one run: ``results/<run-id>/``.

    results/<run-id>/
        matrix.yaml       the matrix that ran
        clients.csv       one row per client transfer, all cells
        server.csv        one row per request the server handled, all cells
        summary.csv       one row per cell (English headers)
        summary.md        the summary table
        cells/<cell-id>/  the raw files each node wrote for that cell

Inside the nodes the same run lives under ``/results/<run-id>/`` on the
shared results volume; the orchestrator copies each cell out as it ends.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping
from pathlib import Path

import yaml

from app.csvlog import CsvLog
from app.fileserver import OUTCOME_FIELDS
from app.stress_client import ROW_FIELDS
from orchestrator.matrix import Matrix, TcpCell
from orchestrator.summary import SUMMARY_FIELDS

CONTAINER_RESULTS = "/results"


def new_run_id(matrix_name: str, now: float | None = None) -> str:
    """``20261121-093000-quick``: sortable, readable, safe as a folder name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in matrix_name)[:40]
    return f"{stamp}-{safe}"


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file; an absent file has none."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class RunFolder:
    """Paths and appenders of one run's results, on the host and in the nodes."""

    def __init__(self, results_root: Path, run_id: str) -> None:
        self.run_id = run_id
        self.path = results_root / run_id
        self.container_path = f"{CONTAINER_RESULTS}/{run_id}"

    def create(self, matrix: Matrix) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "cells").mkdir(exist_ok=True)
        (self.path / "matrix.yaml").write_text(yaml.safe_dump(matrix.source, sort_keys=False))

    def cell_container_dir(self, cell: TcpCell) -> str:
        return f"{self.container_path}/cells/{cell.id}"

    def cell_dir(self, cell: TcpCell) -> Path:
        return self.path / "cells" / cell.id

    def append(self, name: str, rows: list[Mapping[str, object]]) -> None:
        """Append rows to one of the run's merged CSV files, as cells finish."""
        fields = {"clients.csv": ROW_FIELDS, "server.csv": ["cell", *OUTCOME_FIELDS], "summary.csv": SUMMARY_FIELDS}
        with CsvLog(str(self.path / name), fields[name]) as log:
            for row in rows:
                log.write(row)
