"""The original lab's published figures, and this run's cells beside them.

``data/original-figures.csv`` holds the two result tables of the course
report (seed ``000_…``), transcribed with their units as published; see
``data/README.md`` for the source and how damaged rows were read. Loading
converts throughput from KiB/s to MiB/s. Matching is by server pool,
operation, nominal volume (the original's "10 MB" is this lab's 10 MiB
cell), clients and server workers.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from orchestrator.report.model import Cell, ReportError

DATA_FILE = Path(__file__).resolve().parents[2] / "data" / "original-figures.csv"
MIB = 1024 * 1024
BASE64_GROWTH = 4 / 3  # the original's files were base64 text of the nominal size
CONSISTENCY = 0.05  # time x throughput within 5 % of the file size

# Row-specific defects of the original (data/README.md); "I" is checked here, the rest are in the data file.
DEFECTS = {
    "T": "300 s is the placeholder the original gave any failed run, not a measured time",
    "Z": "a '100MB' download of a partial file left by an aborted upload, counted as a success",
    "F": "failed transfers whose cause was not recorded; its per-client means mix successes and failures",
    "C": "all clients uploaded one name, written in place: a client 'success' does not mean an intact file",
    "M": "missing from the original: its clients were OOM-killed ('Killed') and nothing was recorded",
    "I": "published time x throughput differs from the file size by more than 5 % (computed here)",
}
NOT_MEASURED = {"T", "Z", "M"}
# Defects that apply to every row: stated once beside the comparison.
GENERAL_NOTES = [
    "The original never measured the server side (its column says “Periksa Log Server”, check the server log): "
    "this run's server ok/failed counts have no counterpart.",
    "The original's “10/50/100 MB” files were base64 text of 10/50/100 MiB of random bytes, i.e. 13.33/66.67/133.33 "
    "MiB, and uploads base64-encoded them again on the wire; its throughput is of that file. Per transfer it moved "
    "4/3 as many file bytes as this run's cell of the same nominal size.",
    "The original's process-pool figures came from a process-pool client as well; cells are matched on the server "
    "pool only.",
]


@dataclass(frozen=True)
class OriginalFigure:
    """One row of the original's published tables (None where the cell was not recorded)."""

    server_pool: str
    row: int | None
    operation: str
    published_volume: str
    nominal_mib: int
    clients: int
    workers: int
    time_s: float | None
    throughput_mibps: float | None
    clients_ok: int | None
    clients_failed: int | None
    defects: tuple[str, ...]

    @property
    def measured(self) -> bool:
        """False where the published figure is a placeholder, a partial file or absent."""
        return not NOT_MEASURED & set(self.defects)

    @property
    def file_mib(self) -> float:
        return self.nominal_mib * BASE64_GROWTH

    @property
    def consistent(self) -> bool | None:
        """Does time x throughput give the file's size? None if there is nothing to check."""
        if not self.time_s or not self.throughput_mibps:
            return None
        return abs(self.time_s * self.throughput_mibps / self.file_mib - 1) <= CONSISTENCY

    @property
    def all_defects(self) -> tuple[str, ...]:
        """The data file's codes, plus "I" when a measured row's figures contradict each other."""
        return (*self.defects, "I") if self.measured and self.consistent is False else self.defects


def _number(text: str, kind: type, where: str) -> object:
    text = text.strip()
    if not text:
        return None
    try:
        return kind(text)
    except ValueError:
        raise ReportError(f"{where}: {text!r} is not a number") from None


def parse_original(lines: Sequence[str], source: str = "original-figures.csv") -> list[OriginalFigure]:
    """Rows of the data file (comment lines start with ``#``)."""
    body = [line for line in lines if not line.startswith("#")]
    figures = []
    for line, row in enumerate(csv.DictReader(body), start=1):
        where = f"{source} data row {line}"
        try:
            throughput = _number(row["throughput_kb_s"], float, where)
            figures.append(
                OriginalFigure(
                    server_pool=row["table"].strip(),
                    row=_number(row["row"], int, where),  # type: ignore[arg-type]
                    operation=row["operation"].strip(),
                    published_volume=row["published_volume"].strip(),
                    nominal_mib=_number(row["nominal_mib"], int, where),  # type: ignore[arg-type]
                    clients=_number(row["clients"], int, where),  # type: ignore[arg-type]
                    workers=_number(row["server_workers"], int, where),  # type: ignore[arg-type]
                    time_s=_number(row["time_s"], float, where),  # type: ignore[arg-type]
                    throughput_mibps=None if throughput is None else throughput / 1024,  # type: ignore[operator]
                    clients_ok=_number(row["clients_ok"], int, where),  # type: ignore[arg-type]
                    clients_failed=_number(row["clients_failed"], int, where),  # type: ignore[arg-type]
                    defects=tuple((row["defects"] or "").split()),
                )
            )
        except (KeyError, AttributeError) as exc:
            raise ReportError(f"{where}: column {exc} is missing") from None
    return figures


def load_original(path: Path = DATA_FILE) -> list[OriginalFigure]:
    """The original's figures from the data file kept in the repository."""
    try:
        return parse_original(path.read_text(encoding="utf-8").splitlines(), path.name)
    except OSError as exc:
        raise ReportError(f"cannot read the original lab's figures {path}: {exc.strerror}") from None


@dataclass(frozen=True)
class Match:
    """A cell of this run and the original's figure for the same settings."""

    cell: Cell
    original: OriginalFigure

    @property
    def throughput_ratio(self) -> float | None:
        """This run's throughput per client / the original's, where both are measurements."""
        mine, theirs = self.cell.throughput, self.original.throughput_mibps
        if not self.original.measured or not mine or not theirs:
            return None
        return mine / theirs


def match_original(cells: Sequence[Cell], figures: Sequence[OriginalFigure]) -> list[Match]:
    """The cells of this run that the original has too (stream protocol, 10/50/100 MiB)."""
    index = {(f.server_pool, f.operation, f.nominal_mib * MIB, f.clients, f.workers): f for f in figures}
    matches = []
    for cell in cells:
        if cell.protocol != "stream":
            continue
        figure = index.get((cell.server_pool, cell.operation, cell.volume, cell.clients, cell.workers))
        if figure is not None:
            matches.append(Match(cell, figure))
    return matches
