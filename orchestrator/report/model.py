"""A run's TCP cells as typed records, its repeats merged (pure).

A ``Cell`` is the report's view of one merged row of ``summary.csv``: the
TCP experiment's table (``experiments/tcp/rows.py``) reads the file and
merges the repeats (figures: the mean, or the highest for peaks, with their
spread; counts: summed), the same merge the summary tables use. Throughput
per client is always the volume over the mean time per client, so runs made
when the summary held the mean of the clients' rates read the same way as
new ones. Columns a run made before they existed (telemetry, percentiles)
read as ``None``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.sizes import format_size
from orchestrator.experiments.tcp.rows import SUMMARY, THROUGHPUT
from orchestrator.rows import Merged, RowError, Spread

# A stored run cannot be reported: it does not exist, or its files are damaged (exit code 2).
ReportError = RowError

# The report's short names of the summary's figures (each a Cell attribute).
FIGURES = {
    "time_mean": "time_per_client_mean_s",
    "time_p50": "time_per_client_p50_s",
    "time_p95": "time_per_client_p95_s",
    "time_max": "time_per_client_max_s",
    "throughput": THROUGHPUT,
    "rate_mean": "throughput_per_client_mean_mibps",
    "aggregate": "aggregate_mibps",
    "server_cpu": "server_cpu_percent",
    "client_cpu": "client_cpu_percent",
    "server_memory": "server_memory_peak_mib",
    "client_memory": "client_memory_peak_mib",
    "server_rss": "server_peak_rss_mib",
    "client_rss": "client_peak_rss_mib",
}
COUNT_FIELDS = ("clients_ok", "clients_failed", "server_ok", "server_failed")


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
    server_ok: int | None = 0  # None: the server's side was not measured (a submission's view of a download)
    server_failed: int | None = 0
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
        return self.clients_failed + (self.server_failed or 0)

    @property
    def label(self) -> str:
        """``upload 10 MiB, 50 clients, thread x5``."""
        op = self.operation if self.protocol == "stream" else f"{self.operation} ({self.protocol})"
        return f"{op} {format_size(self.volume)}, {self.clients} clients, {self.server_pool} x{self.workers}"


def optional_float(value: object, where: str = "", key: str = "") -> float | None:
    """A float, or None for an empty or absent value; a non-number is a ReportError."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return float(str(value))
    except ValueError:
        raise ReportError(f"{where}: column {key!r} holds {value!r}, not a number") from None


def cell_of(m: Merged) -> Cell:
    """The report's record of one merged summary row."""
    v = m.values
    return Cell(
        number=int(v["number"]),  # type: ignore[call-overload]
        operation=str(v["operation"]),
        volume=int(v["volume_bytes"]),  # type: ignore[call-overload]
        clients=int(v["client_workers"]),  # type: ignore[call-overload]
        workers=int(v["server_workers"]),  # type: ignore[call-overload]
        server_pool=str(v["server_pool"]),
        client_pool=str(v.get("client_pool") or "thread"),
        protocol=str(v.get("protocol") or "stream"),
        repeats=m.repeats,
        cell_ids=tuple(str(r.get("cell_id") or "") for r in m.members),
        errors=tuple(str(r["errors"]) for r in m.members if r.get("errors")),
        **{attr: v.get(column) for attr, column in FIGURES.items()},  # type: ignore[arg-type]
        **{key: None if v.get(key) is None else int(v[key]) for key in COUNT_FIELDS},  # type: ignore[call-overload]
        spread={attr: m.spread[column] for attr, column in FIGURES.items() if column in m.spread},
    )


def parse_cells(rows: Sequence[Mapping[str, object]]) -> list[Cell]:
    """The cells of typed ``summary.csv`` rows (``SUMMARY.read``), repeats merged, in cell-number order."""
    return [cell_of(m) for m in SUMMARY.merge(rows)]
