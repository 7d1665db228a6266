"""The folder of one run: ``results/<run-id>/``.

    results/<run-id>/
        run.json          how the run was asked for (matrix, repeats, seed) and its status
        matrix.yaml       the matrix that ran
        clients.csv       one row per client transfer, all cells
        server.csv        one row per request the server handled, all cells
        summary.csv       one row per cell (English headers)
        laporan-<pool>.csv  with --lang id: the course report's Indonesian columns, per pool mode
        summary.md        the summary tables
        cells/<cell-id>/  the raw files each node wrote for that cell

Inside the nodes the same run lives under ``/results/<run-id>/`` on the
shared results volume; the orchestrator copies each cell out as it ends.
A cell's rows are appended to the merged CSV files only once it has
finished, summary last, so ``summary.csv`` lists exactly the finished cells.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from app.csvlog import CsvLog
from app.fileserver import OUTCOME_FIELDS
from app.stress_client import ROW_FIELDS
from orchestrator.errors import LabError, UsageError
from orchestrator.matrix import Matrix, TcpCell, UdpCell
from orchestrator.summary import SUMMARY_FIELDS

CONTAINER_RESULTS = "/results"
EXPERIMENTS = ("all", "tcp", "udp")
LANGUAGES = ("en", "id")
# A run id names a folder on the host and in the nodes (where `rm -rf` clears a cell): letters,
# digits, '.', '_' and '-', not starting with '.', so never a path, a hidden name, '.' or '..'.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
MERGED_FIELDS = {
    "clients.csv": ["cell_id", *ROW_FIELDS],
    "server.csv": ["cell_id", "cell", *OUTCOME_FIELDS],
    "summary.csv": SUMMARY_FIELDS,
}


def new_run_id(matrix_name: str, now: float | None = None) -> str:
    """``20261121-093000-quick``: sortable, readable, safe as a folder name."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in matrix_name)[:40]
    return f"{stamp}-{safe}"


def check_run_id(run_id: str, option: str = "--run-id") -> str:
    """``run_id`` if it is a safe folder name, else UsageError (exit 2) saying what is allowed."""
    if not RUN_ID.fullmatch(run_id):
        raise UsageError(
            f"{option}: {run_id!r} is not a valid run id: use 1-128 letters, digits, '.', '_' or '-', "
            "not starting with '.'"
        )
    return run_id


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file; an absent file has none."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, fields: Sequence[str], rows: Sequence[Mapping[str, object]]) -> None:
    """Write a whole CSV file (replacing it atomically)."""
    temp = path.with_suffix(".tmp")
    with temp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    temp.replace(path)


@dataclass
class RunState:
    """How the run was asked for: what ``--resume`` needs to finish it the same way.

    Keys added later have defaults, so a ``run.json`` written before them still resumes.
    """

    run_id: str
    matrix: str  # as given on the command line
    experiment: str
    repeat: int
    shuffle_seed: int | None
    status: str  # running | interrupted | finished | failed
    started: float
    finished: float | None = None
    lang: str = "en"  # --lang: headers of the tables, and laporan-*.csv with "id"
    keep_downloads: bool = False  # --keep-downloads


class RunFolder:
    """Paths and files of one run's results, on the host and in the nodes."""

    def __init__(self, results_root: Path, run_id: str) -> None:
        self.run_id = check_run_id(run_id)
        self.path = results_root / run_id
        self.container_path = f"{CONTAINER_RESULTS}/{run_id}"

    # --- the run as a whole ---------------------------------------------------
    def create(self, matrix: Matrix, state: RunState) -> None:
        if self.path.exists():
            raise LabError(f"{self.path} already exists; choose another --run-id or --resume {self.run_id}")
        (self.path / "cells").mkdir(parents=True)
        (self.path / "matrix.yaml").write_text(yaml.safe_dump(matrix.source, sort_keys=False))
        self.save_state(state)

    def save_state(self, state: RunState) -> None:
        (self.path / "run.json").write_text(json.dumps(asdict(state), indent=2) + "\n")

    def load_state(self) -> RunState:
        try:
            state = RunState(**json.loads((self.path / "run.json").read_text()))
        except FileNotFoundError:
            raise LabError(f"no run to resume at {self.path} (run.json is missing)") from None
        except (ValueError, TypeError) as exc:
            raise LabError(f"{self.path / 'run.json'} is damaged: {exc}") from None
        if (
            state.experiment not in EXPERIMENTS
            or not isinstance(state.repeat, int)
            or state.repeat < 1
            or state.lang not in LANGUAGES
            or not isinstance(state.keep_downloads, bool)
        ):
            details = (
                f"experiment {state.experiment!r}, repeat {state.repeat!r}, lang {state.lang!r}, "
                f"keep_downloads {state.keep_downloads!r}"
            )
            raise LabError(f"{self.path / 'run.json'} is damaged: {details}")
        return state

    def matrix_data(self) -> object:
        """The matrix stored with the run (validated by the caller, as any matrix file)."""
        try:
            return yaml.safe_load((self.path / "matrix.yaml").read_text())
        except OSError as exc:
            raise LabError(f"cannot read {self.path / 'matrix.yaml'}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise LabError(f"{self.path / 'matrix.yaml'} is damaged: {exc}") from None

    # --- cells ---------------------------------------------------------------------
    def cell_container_dir(self, cell: TcpCell | UdpCell) -> str:
        return f"{self.container_path}/cells/{cell.id}"

    def cell_dir(self, cell: TcpCell | UdpCell) -> Path:
        return self.path / "cells" / cell.id

    def append(self, name: str, rows: Sequence[Mapping[str, object]]) -> None:
        """Append rows to one of the run's merged CSV files."""
        with CsvLog(str(self.path / name), MERGED_FIELDS[name]) as log:
            for row in rows:
                log.write(row)

    def append_cell(
        self,
        cell_id: str,
        clients: Sequence[Mapping[str, object]],
        server: Sequence[Mapping[str, object]],
        summary: Mapping[str, object],
    ) -> None:
        """Record one finished cell: its client and server rows, then its summary."""
        self.append("clients.csv", [{"cell_id": cell_id, **row} for row in clients])
        self.append("server.csv", [{"cell_id": cell_id, **row} for row in server])
        self.append("summary.csv", [summary])

    def finished_cells(self) -> list[dict[str, str]]:
        return read_csv(self.path / "summary.csv")

    def drop_unfinished(self) -> None:
        """Ready the CSV files for a resumed run to append to.

        Rows of a cell that was cut off before its summary was written are
        removed. A file written by an older version with fewer columns is
        rewritten with today's (its rows keep their values; the new columns
        stay empty), so appended rows never land under the wrong header.
        """
        done = {row["cell_id"] for row in self.finished_cells()}
        for name, fields in MERGED_FIELDS.items():
            path = self.path / name
            if not path.is_file():
                continue
            with path.open(newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), [])
            if unknown := [column for column in header if column not in fields]:
                raise LabError(
                    f"{path} has columns this version does not write ({', '.join(unknown)}); "
                    "it cannot be resumed: start a new run"
                )
            rows = read_csv(path)
            kept = rows if name == "summary.csv" else [row for row in rows if row.get("cell_id") in done]
            if len(kept) != len(rows) or header != fields:
                write_csv(path, fields, kept)
