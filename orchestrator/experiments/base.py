"""What an experiment is: the interface every experiment implements, and what a cell's run gives back.

An experiment plans its cells from its section of the matrix (pure), runs one
cell at a time on the lab, and says which tables (CSV files) its rows go to.
Everything around the cells (progress, resume, repeats, shuffling,
interruption, clean-up, writing rows) is the one cell loop's job
(``loop.py``), the same for every experiment. To add an experiment, write a
module with a subclass of ``Experiment`` and register it in ``registry.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from orchestrator.matrix import Cell, Section
from orchestrator.rows import Table
from orchestrator.store import RunFolder, RunState

C = TypeVar("C", bound=Cell)


@dataclass
class CellResult:
    """What one cell's run recorded: its rows of each of the experiment's tables, and how it went."""

    rows: Mapping[Table, Sequence[Mapping[str, object]]]
    line: str  # the cell's figures for the progress line
    failures: int = 0  # transfers (or receivers) that failed in this cell


@dataclass
class Summary:
    """An experiment's results over every finished cell of a run."""

    markdown: str  # its tables in summary.md
    terminal: str  # its tables on a terminal
    failures: int
    where: str = ""  # where the failures are described, e.g. "summary.csv (errors)"
    files: list[Path] = field(default_factory=list)  # files it wrote besides the rows (e.g. udp_summary.csv)


class Experiment(ABC, Generic[C]):
    """One experiment of the lab (``tcp``, ``udp``, ``bench``, ...)."""

    name: ClassVar[str]  # its section in a matrix file, and its --experiment choice
    title: ClassVar[str]  # its heading in summary.md
    tables: ClassVar[tuple[Table, ...]]  # the CSV files its cells append to; the last lists the finished cells
    area: ClassVar[str] = "cells"  # the run folder's sub-folder for its cells' raw files
    programs: ClassVar[str] = "programs"  # what runs in the nodes for it, for "stopping the ... in the nodes"
    in_matrix: ClassVar[bool] = True  # part of `orchestrate.py` runs (False: a command of its own, like bench)

    def __init__(self, state: RunState | None = None) -> None:
        self.state = state

    @property
    def done_table(self) -> Table:
        return self.tables[-1]

    @staticmethod
    @abstractmethod
    def parse(section: Any, where: str) -> Section:
        """Validate this experiment's section of a matrix file and expand it into cells (pure)."""

    def adapt(self, cells: list[C], say: Any) -> list[C]:
        """The planned cells this run can run (e.g. only a submission's pool modes); all of them by default."""
        return cells

    def prepare(self, lab: Any) -> None:
        """Before the first cell: e.g. stop programs a killed earlier run left in the nodes."""

    @abstractmethod
    def run_cell(self, lab: Any, folder: RunFolder, cell: C) -> CellResult:
        """Run one cell on the lab; its rows are written by the loop once it returns."""

    def stop_programs(self, lab: Any) -> None:
        """After an interruption or a failure: none of this experiment's programs may go on in the nodes."""

    def cleanup(self, lab: Any) -> None:
        """After the cells, whatever happened (e.g. the default server again); never raises."""

    @abstractmethod
    def summarize(self, folder: RunFolder, lang: str = "en") -> Summary:
        """Tables and failures from every finished cell stored in ``folder``; writes derived files."""
