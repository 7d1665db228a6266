"""A run's TCP cells as typed records, parsed from ``summary.csv`` rows (pure).

Repeats of one cell (same number) are merged: figures are the mean over the
repeats (their spread is kept in ``Cell.spread``), counts are summed.
Throughput per client is always the volume over the mean time per client,
computed here from the stored time, so runs made when the summary held the
mean of the clients' rates read the same way as new ones. Columns a run made before they existed (telemetry,
percentiles) are simply absent and read as ``None``; a row that lacks a column
every run has, or holds a value that is not a number, is refused with a
``ReportError`` that names the file, the row and the column.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import fmean

from app.sizes import format_size
from orchestrator.errors import LabError
from orchestrator.summary import Spread, per_client_throughput

Row = Mapping[str, object]

REQUIRED_SUMMARY = (
    "number", "operation", "volume_bytes", "client_workers", "server_workers", "server_pool",
    "time_per_client_mean_s", "clients_ok", "clients_failed",
    "server_ok", "server_failed",
)  # fmt: skip

FLOAT_FIELDS = {
    "time_mean": "time_per_client_mean_s",
    "time_p50": "time_per_client_p50_s",
    "time_p95": "time_per_client_p95_s",
    "time_max": "time_per_client_max_s",
    "rate_mean": "throughput_per_client_mean_mibps",
    "aggregate": "aggregate_mibps",
    "server_cpu": "server_cpu_percent",
    "client_cpu": "client_cpu_percent",
    "server_memory": "server_memory_peak_mib",
    "client_memory": "client_memory_peak_mib",
    "server_rss": "server_peak_rss_mib",
    "client_rss": "client_peak_rss_mib",
}
PEAK_FIELDS = {"time_max", "server_memory", "client_memory", "server_rss", "client_rss"}  # max over repeats
MIB = 1024 * 1024
COUNT_FIELDS = ("clients_ok", "clients_failed", "server_ok", "server_failed")


class ReportError(LabError):
    """A run cannot be reported: it does not exist or its files are damaged."""

    exit_code = 2


@dataclass(frozen=True)
class Cell:
    """One TCP cell of a run, its repeats merged."""

    number: int
    operation: str
    volume: int  # bytes
    clients: int
    workers: int
    server_pool: str
    client_pool: str = "thread"
    protocol: str = "stream"
    repeats: int = 1
    cell_ids: tuple[str, ...] = ()
    time_mean: float | None = None
    time_p50: float | None = None
    time_p95: float | None = None
    time_max: float | None = None
    throughput: float | None = None  # volume / mean time per client
    rate_mean: float | None = None  # mean of each client's own rate (larger when times differ)
    aggregate: float | None = None
    server_cpu: float | None = None
    client_cpu: float | None = None
    server_memory: float | None = None
    client_memory: float | None = None
    server_rss: float | None = None
    client_rss: float | None = None
    clients_ok: int = 0
    clients_failed: int = 0
    server_ok: int = 0
    server_failed: int = 0
    errors: tuple[str, ...] = field(default=())
    spread: Mapping[str, Spread] = field(default_factory=dict, compare=False, hash=False)  # over 2+ repeats

    def range_of(self, metric: str) -> tuple[float, float] | None:
        """Lowest and highest value of ``metric`` over the repeats; a single run's value twice; None if none."""
        found = self.spread.get(metric)
        if found is not None:
            return found.low, found.high
        value = getattr(self, metric)
        return None if value is None else (value, value)

    @property
    def key(self) -> tuple[str, str, int, int, int, str, str]:
        """What identifies a cell across runs: everything but its number."""
        return (
            self.operation,
            self.protocol,
            self.volume,
            self.clients,
            self.workers,
            self.server_pool,
            self.client_pool,
        )

    @property
    def failed(self) -> int:
        return self.clients_failed + self.server_failed

    @property
    def label(self) -> str:
        """``upload 10 MiB, 50 clients, thread x5``."""
        op = self.operation if self.protocol == "stream" else f"{self.operation} ({self.protocol})"
        return f"{op} {format_size(self.volume)}, {self.clients} clients, {self.server_pool} x{self.workers}"


def _text(row: Row, key: str, where: str) -> str:
    value = row.get(key)
    if value is None:
        raise ReportError(f"{where}: column {key!r} is missing")
    return str(value).strip()


def _int(row: Row, key: str, where: str) -> int:
    text = _text(row, key, where)
    try:
        return int(float(text))
    except ValueError:
        raise ReportError(f"{where}: column {key!r} holds {text!r}, not a number") from None


def optional_float(value: object, where: str = "", key: str = "") -> float | None:
    """A float, or None for an empty or absent value; a non-number is a ReportError."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return float(str(value))
    except ValueError:
        raise ReportError(f"{where}: column {key!r} holds {value!r}, not a number") from None


def parse_cells(rows: Sequence[Row], source: str = "summary.csv") -> list[Cell]:
    """The cells of ``summary.csv`` rows, repeats merged, in cell-number order."""
    if rows:
        missing = [key for key in REQUIRED_SUMMARY if key not in rows[0]]
        if missing:
            raise ReportError(f"{source}: column(s) {', '.join(missing)} missing: is this a progjar-lab summary?")
    groups: dict[int, list[tuple[Row, str]]] = defaultdict(list)
    for index, row in enumerate(rows, start=2):  # line 1 is the header
        where = f"{source} line {index}"
        groups[_int(row, "number", where)].append((row, where))
    cells = []
    for number in sorted(groups):
        members = groups[number]
        first, where = members[0]
        volume = _int(first, "volume_bytes", where)
        floats: dict[str, float | None] = {}
        spread: dict[str, Spread] = {}
        for name, key in FLOAT_FIELDS.items():
            values = [v for r, w in members if (v := optional_float(r.get(key), w, key)) is not None]
            floats[name] = (max(values) if name in PEAK_FIELDS else fmean(values)) if values else None
            if len(values) > 1:
                spread[name] = Spread.of(values)
        floats["throughput"] = per_client_throughput(volume, floats["time_mean"])
        times = [t for t in (optional_float(r.get("time_per_client_mean_s")) for r, _ in members) if t]
        if len(times) > 1:
            spread["throughput"] = Spread.of([volume / MIB / t for t in times], mean=floats["throughput"])
        counts = {key: sum(_int(r, key, w) for r, w in members) for key in COUNT_FIELDS}
        cells.append(
            Cell(
                number=number,
                operation=_text(first, "operation", where),
                volume=volume,
                clients=_int(first, "client_workers", where),
                workers=_int(first, "server_workers", where),
                server_pool=_text(first, "server_pool", where),
                client_pool=str(first.get("client_pool") or "thread"),
                protocol=str(first.get("protocol") or "stream"),
                repeats=len(members),
                cell_ids=tuple(str(r.get("cell_id") or "") for r, _ in members),
                errors=tuple(str(r["errors"]) for r, _ in members if r.get("errors")),
                **floats,  # type: ignore[arg-type]
                **counts,
                spread=spread,
            )
        )
    return cells
