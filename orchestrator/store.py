"""The folder of one run: ``results/<run-id>/``.

    results/<run-id>/
        run.json          how the run was asked for (matrix, repeats, seed) and its status
        matrix.yaml       the matrix that ran
        manifest.json     the environment it ran in
        summary.md        the summary tables
        <table>.csv       each experiment's rows (see its ``rows.py``), appended cell by cell
        <cells>/<cell-id>/  the raw files the nodes wrote for each cell

Inside the nodes the same run lives under ``/results/<run-id>/`` on the
shared results volume; the orchestrator copies each cell out as it ends.
A cell's rows are appended to the run's CSV files only once it has
finished, its experiment's "done" table last, so that table lists exactly
the finished cells and ``--resume`` can drop what a killed run left half-written.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import LabError, UsageError
from orchestrator.matrix import Cell, Matrix
from orchestrator.rows import Table, header_of, read_raw, write_csv

CONTAINER_RESULTS = "/results"
LANGUAGES = ("en", "id")
# A run id names a folder on the host and in the nodes (where `rm -rf` clears a cell): letters,
# digits, '.', '_' and '-', not starting with '.', so never a path, a hidden name, '.' or '..'.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


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
    server: dict[str, Any] | None = None  # --server: the submission measured instead of the lab's server
    client: dict[str, Any] | None = None  # --client: the submission whose client runs instead of the lab's


def cut_torn_write(path: Path) -> None:
    """Remove a cell's rows whose write was cut short (the file does not end with a whole line).

    A cell's rows of a table are appended in one write that ends with a
    newline; a file that ends otherwise lost that write half way (a full
    disk, a crash), so every row of that cell goes, the whole ones too.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.endswith("\n"):
        return
    header, *rows = list(csv.reader(io.StringIO(text)))
    if not rows:  # the very first write was cut, in its header: nothing of the file is whole
        path.unlink()
        return
    column = header.index("cell_id") if "cell_id" in header else 0
    torn = rows[-1][column] if rows and len(rows[-1]) > column else None
    kept = [dict(zip(header, row, strict=False)) for row in rows[:-1] if len(row) <= column or row[column] != torn]
    write_csv(path, header, kept)


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
            not isinstance(state.experiment, str)
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
    def cell_container_dir(self, cell: Cell, area: str = "cells") -> str:
        return f"{self.container_path}/{area}/{cell.id}"

    def cell_dir(self, cell: Cell, area: str = "cells") -> Path:
        return self.path / area / cell.id

    def append_cell(self, rows: Mapping[Table, Sequence[Mapping[str, object]]]) -> None:
        """Record one finished cell: its rows of each table, in order (the experiment's done table last)."""
        for table, table_rows in rows.items():
            if table_rows:
                table.append(self.path, table_rows)

    def finished(self, done: Table) -> set[str]:
        """Ids of the cells whose rows are in the ``done`` table: they are finished."""
        return {row["cell_id"] for row in read_raw(self.path / done.file)}

    def drop_unfinished(self, tables: Sequence[Table], done: Table) -> None:
        """Ready the CSV files for a resumed run to append to.

        Rows of a cell that was cut off before its ``done`` rows were written
        are removed. A file written by an older version with fewer columns is
        rewritten with today's (its rows keep their values; the new columns
        stay empty), so appended rows never land under the wrong header.
        """
        for table in tables:
            cut_torn_write(self.path / table.file)
        finished = self.finished(done)
        for table in tables:
            path = self.path / table.file
            if not path.is_file():
                continue
            header = header_of(path)
            if unknown := [column for column in header if column not in table.fields]:
                raise LabError(
                    f"{path} has columns this version does not write ({', '.join(unknown)}); "
                    "it cannot be resumed: start a new run"
                )
            rows = read_raw(path)
            kept = rows if table is done else [row for row in rows if row.get("cell_id") in finished]
            if len(kept) != len(rows) or header != table.fields:
                write_csv(path, table.fields, kept)
