"""The one row model: typed columns, how rows are written to and read from CSV, how repeats merge.

Every CSV file of a run is a ``Table``: a list of ``Column`` s, each with its
type and the rule that merges its values over the repeats of one cell. The
same table writes the rows (the runner), reads them back as typed values
(the report, ``compare``, ``--resume``) and merges repeats (the summary
tables and the charts alike), so a column added to a table is written, read,
merged and shown without being listed anywhere else.

Merge rules:

* ``key``: a setting of the cell, the same in every repeat (the first is kept);
* ``mean``: mean over the repeats, with its spread (``Spread``);
* ``peak``: the highest value over the repeats (a peak of memory or time), with its spread;
* ``sum``: counts are added up;
* ``text``: the repeats' non-empty texts joined with ``"; "``.

A value that is empty, or a column absent from an older file, reads as
``None``; a value that is not a number where one is expected is a
``RowError`` naming the file, the line and the column.
"""

from __future__ import annotations

import csv
import io
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean, stdev
from typing import Literal, NamedTuple

from orchestrator.errors import LabError

Merge = Literal["key", "mean", "peak", "sum", "text"]
Row = dict[str, object]  # a typed row: column name -> int, float, str or None


class RowError(LabError):
    """A stored CSV file cannot be read as its table: it is damaged or not a progjar-lab file."""

    exit_code = 2


class Spread(NamedTuple):
    """A figure over the repeats of a cell: its merged value, standard deviation, lowest and highest."""

    mean: float
    sd: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float], mean: float | None = None) -> Spread:
        return cls(
            fmean(values) if mean is None else mean,
            stdev(values) if len(values) > 1 else 0.0,
            min(values),
            max(values),
        )


@dataclass(frozen=True)
class Column:
    """One column of a table: its name in the CSV header, its type and how repeats merge."""

    name: str
    kind: type = float  # int, float or str
    merge: Merge = "mean"

    def parse(self, text: str | None, where: str) -> object:
        if text is None or (self.kind is not str and text.strip() == ""):
            return None
        if self.kind is str:
            return text
        try:
            return int(float(text)) if self.kind is int else float(text)
        except ValueError:
            raise RowError(f"{where}: column {self.name!r} holds {text!r}, not a number") from None


def _text(value: object) -> str:
    return "" if value is None else str(value)


@dataclass
class Merged:
    """One cell over its repeats: each column's merged value, the spread of its figures, its members."""

    values: Row
    spread: dict[str, Spread] = field(default_factory=dict)  # only figures with 2+ repeats
    members: list[Row] = field(default_factory=list)

    @property
    def repeats(self) -> int:
        return len(self.members)


@dataclass(frozen=True, eq=False)  # eq=False: a table is itself (hashable, a key of a cell's rows)
class Table:
    """A CSV file of a run: its columns, in header order, and the ones every file must have."""

    file: str
    columns: tuple[Column, ...]
    required: tuple[str, ...] = ()
    # Columns computed after merging from the merged row (e.g. throughput = volume / mean time):
    # name -> function of one row; its spread is taken over the members' own values.
    derived: Mapping[str, Callable[[Mapping[str, object]], float | None]] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    # --- writing ------------------------------------------------------------
    def encode(self, rows: Iterable[Mapping[str, object]]) -> str:
        """Rows as CSV lines (no header); a missing value is empty, a column not in the table is refused."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.fields, lineterminator="\n")
        writer.writerows({key: _text(value) for key, value in row.items()} for row in rows)
        return buffer.getvalue()

    def append(self, folder: Path, rows: Sequence[Mapping[str, object]]) -> None:
        """Append ``rows`` to ``folder/file`` in one write (the header first if the file is new)."""
        path = folder / self.file
        text = self.encode(rows)
        if not path.is_file() or path.stat().st_size == 0:
            text = ",".join(self.fields) + "\n" + text
        with path.open("a", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # a cell's rows are on disk before the next cell starts

    def write(self, folder: Path, rows: Sequence[Mapping[str, object]]) -> None:
        """Write the whole file (replacing it atomically)."""
        write_csv(folder / self.file, self.fields, rows)

    # --- reading ------------------------------------------------------------
    def read(self, folder: Path) -> list[Row]:
        """The typed rows of ``folder/file`` (none if it is absent)."""
        path = folder / self.file
        raw = read_raw(path)
        if raw:
            missing = [name for name in self.required if name not in raw[0]]
            if missing:
                raise RowError(f"{path}: column(s) {', '.join(missing)} missing: is this a progjar-lab {self.file}?")
        return [self.decode(row, f"{path} line {line}") for line, row in enumerate(raw, start=2)]

    def decode(self, raw: Mapping[str, str | None], where: str) -> Row:
        """One CSV row as typed values; a required column must be present and non-empty."""
        row = {c.name: c.parse(raw.get(c.name), where) for c in self.columns}
        for name in self.required:
            if row[name] is None:
                raise RowError(f"{where}: column {name!r} is missing")
        return row

    # --- merging repeats ------------------------------------------------------
    def merge(self, rows: Sequence[Mapping[str, object]], by: str = "number") -> list[Merged]:
        """One ``Merged`` per value of ``by`` (in ascending order): the cell over its repeats."""
        groups: dict[object, list[Row]] = defaultdict(list)
        for row in rows:
            groups[row[by]].append({**row, **{name: f(row) for name, f in self.derived.items()}})
        return [self._merge(groups[key]) for key in sorted(groups, key=lambda k: (k is None, k))]

    def _merge(self, members: list[Row]) -> Merged:
        merged = Merged(dict(members[0]), members=members)
        for column in self.columns:
            values = [v for r in members if (v := r.get(column.name)) is not None]
            if column.merge == "sum":  # nothing to add up (a figure not measured) stays None
                merged.values[column.name] = sum(values) if values else None  # type: ignore[arg-type]
            elif column.merge == "text":
                merged.values[column.name] = "; ".join(str(v) for v in values if v)
            elif column.merge in ("mean", "peak") and column.name not in self.derived:
                numbers = [float(v) for v in values]  # type: ignore[arg-type]
                value = (fmean(numbers) if column.merge == "mean" else max(numbers)) if numbers else None
                merged.values[column.name] = value
                if value is not None and len(numbers) > 1:
                    merged.spread[column.name] = Spread.of(numbers, value)
        for name, derive in self.derived.items():
            merged.values[name] = derive(merged.values)
            numbers = [float(v) for r in members if (v := r.get(name)) is not None]  # type: ignore[arg-type]
            if len(numbers) > 1 and merged.values[name] is not None:
                merged.spread[name] = Spread.of(numbers, merged.values[name])  # type: ignore[arg-type]
        return merged


# --- plain CSV files ------------------------------------------------------------------


def read_raw(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file as text (none if it is absent); a damaged file is a RowError naming it."""
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (csv.Error, UnicodeDecodeError, OSError) as exc:
        raise RowError(f"{path} cannot be read: {exc}") from None
    for line, row in enumerate(rows, start=2):
        if None in row:
            raise RowError(f"{path} line {line} has more fields than the header: the file is damaged")
    return rows


def write_csv(path: Path, fields: Sequence[str], rows: Sequence[Mapping[str, object]]) -> None:
    """Write a whole CSV file (replacing it atomically); values not in ``fields`` are left out."""
    temp = path.with_suffix(".tmp")
    with temp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({key: _text(value) for key, value in row.items()} for row in rows)
    temp.replace(path)


def header_of(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f), [])
