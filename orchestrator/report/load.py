"""Read a stored run folder into memory (I/O only; no Docker, nothing rerun).

Everything the report needs is in ``results/<run-id>/``: ``summary.csv``,
``clients.csv``, ``server.csv``, the UDP experiment's ``udp.csv`` and
``udp_summary.csv`` when it ran, ``run.json``, ``matrix.yaml`` and
``manifest.json`` (runs made before manifests existed have none).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.experiments.tcp.rows import CLIENTS, SERVER, SUMMARY
from orchestrator.experiments.udp.rows import UDP, UDP_SUMMARY, summarize_udp
from orchestrator.report.model import Cell, ReportError, parse_cells
from orchestrator.rows import Row, read_raw

CsvRows = list[dict[str, str]]


@dataclass
class RunData:
    """One run's stored files, parsed."""

    run_id: str
    path: Path
    state: dict[str, Any] = field(default_factory=dict)  # run.json
    matrix_text: str = ""
    summary: list[Row] = field(default_factory=list)  # typed rows of summary.csv
    cells: list[Cell] = field(default_factory=list)
    clients: CsvRows = field(default_factory=list)
    server: CsvRows = field(default_factory=list)
    udp: CsvRows = field(default_factory=list)
    udp_summary: CsvRows = field(default_factory=list)
    manifest: dict[str, Any] | None = None

    @property
    def has_udp(self) -> bool:
        return bool(self.udp or self.udp_summary)


def read_rows(path: Path) -> CsvRows:
    """Rows of a CSV file as text (none if it is absent); a damaged file is a ReportError naming it."""
    return read_raw(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        raise ReportError(f"{path} is damaged: {exc}") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path} is damaged: not a JSON object")
    return data


def find_run(results: Path, run_id: str) -> Path:
    """The folder of run ``run_id`` under ``results`` (or ``run_id`` itself if it is a run folder's path)."""
    folder = results / run_id
    if folder.is_dir():
        return folder
    given = Path(run_id)
    if given.is_dir() and ((given / "run.json").is_file() or (given / "summary.csv").is_file()):
        return given
    raise ReportError(f"no run {run_id!r} in {results} (python orchestrate.py list shows the stored runs)")


def load_run(path: Path) -> RunData:
    """Everything stored in the run folder ``path``."""
    if not path.is_dir():
        raise ReportError(f"no run folder at {path} (python orchestrate.py list shows the stored runs)")
    if not any((path / table.file).is_file() for table in (SUMMARY, UDP, UDP_SUMMARY)):
        raise ReportError(f"{path} has no summary.csv or udp.csv: no cell of this run has finished")
    summary = SUMMARY.read(path)
    udp = read_rows(path / UDP.file)
    udp_summary = read_rows(path / UDP_SUMMARY.file)
    if udp and not udp_summary:
        udp_summary = [{k: "" if v is None else str(v) for k, v in row.items()} for row in summarize_udp(udp)]
    matrix = path / "matrix.yaml"
    return RunData(
        run_id=path.name,
        path=path,
        state=_read_json(path / "run.json") or {},
        matrix_text=matrix.read_text(encoding="utf-8", errors="replace") if matrix.is_file() else "",
        summary=summary,
        cells=parse_cells(summary),
        clients=read_rows(path / CLIENTS.file),
        server=read_rows(path / SERVER.file),
        udp=udp,
        udp_summary=udp_summary,
        manifest=_read_json(path / "manifest.json"),
    )
