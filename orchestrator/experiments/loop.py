"""The one cell loop: every experiment's cells run through it.

It owns what is the same for every experiment: which cells are left (a
resumed run skips those already in the experiment's done table and drops
rows a killed run left half-written), the progress line, writing each
cell's rows as soon as the cell ends (so an interrupted run loses at most
the cell under way), stopping the experiment's programs in the nodes when
interrupted or failed, and the clean-up afterwards. Repeats and shuffling
are in the planned order it is given (``matrix.plan``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import LabError
from orchestrator.experiments.base import CellResult, Experiment
from orchestrator.matrix import Cell
from orchestrator.store import RunFolder

Say = Callable[[str], None]


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass
class Progress:
    """Cells done of total, the current cell, elapsed, ETA and failures so far.

    On a terminal the current cell is shown on a line that is rewritten in
    place; elsewhere (CI, a log file) only one plain line per finished cell.
    """

    total: int
    say: Say
    done: int = 0  # includes cells finished by an earlier, resumed attempt
    live: bool = field(default_factory=lambda: sys.stdout.isatty())
    started: float = field(default_factory=time.monotonic)
    ran: int = 0
    failures: int = 0

    def _times(self) -> str:
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.ran * (self.total - self.done) if self.ran else None
        return f"elapsed {clock(elapsed)} eta {clock(eta) if eta is not None else '?:??:??'}"

    def cell_started(self, cell: Cell) -> None:
        if self.live:
            self.say(f"\r\033[K[{self.done + 1:>3}/{self.total}] {cell.id} running… | {self._times()}\r")

    def cell_done(self, cell: Cell, result: CellResult) -> None:
        self.done += 1
        self.ran += 1
        self.failures += result.failures
        prefix = "\r\033[K" if self.live else ""
        self.say(
            f"{prefix}[{self.done:>3}/{self.total}] {cell.id:<37} {result.line}"
            f"  | {self._times()} failures {self.failures}"
        )


def remaining(experiment: Experiment[Any], folder: RunFolder, planned: Sequence[Cell], resume: bool) -> list[Cell]:
    """The planned cells not finished yet; with ``resume``, the files are made ready to append to first."""
    if not resume:
        return list(planned)
    folder.drop_unfinished(experiment.tables, experiment.done_table)
    finished = folder.finished(experiment.done_table)
    return [cell for cell in planned if cell.id not in finished]


def run_cells(
    experiment: Experiment[Any],
    lab: Any,
    folder: RunFolder,
    planned: Sequence[Cell],
    say: Say,
    resume: bool = False,
) -> int:
    """Run the planned cells not finished yet; returns how many ran."""
    todo = remaining(experiment, folder, planned, resume)
    if resume:
        say(f"{len(planned) - len(todo)} of {len(planned)} {experiment.name.upper()} cells already done")
    if not todo:
        return 0
    progress = Progress(len(planned), say, done=len(planned) - len(todo))
    try:
        experiment.prepare(lab)
        for cell in todo:
            progress.cell_started(cell)
            result = experiment.run_cell(lab, folder, cell)
            folder.append_cell(result.rows)
            progress.cell_done(cell, result)
    except (KeyboardInterrupt, Exception) as exc:
        # The programs in the nodes do not notice that the orchestrator stopped (they end only at
        # their own time limits): stop them now, so none goes on sending or holds a port.
        why = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        say(f"\n{why}: stopping the {experiment.programs} in the nodes…")
        try:
            experiment.stop_programs(lab)
        except LabError:
            pass  # e.g. a node is gone: the original error says more
        raise
    finally:
        experiment.cleanup(lab)
    return len(todo)
