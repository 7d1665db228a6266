"""Compare two stored runs cell by cell: ``python orchestrate.py compare RUN_A RUN_B``.

Cells are matched on their settings (operation, protocol, volume, clients,
server workers, server pool, client pool), not on their numbers, so runs of
different matrices compare on the cells they share. A setting that is one
fixed value in each run but differs between them (say, a thread-pool run
against a process-pool run) is left out of the match and named in the
header: that is how thread is compared with process. UDP rows match on
model, payload size, framing, rate and receiver.

Noise: a difference is "within noise" when the two runs' ranges over their
repeats (lowest to highest; a run without repeats is its one value) overlap,
and only runs with repeats have a range to overlap. Without repeats in
either run the comparison says that a single run cannot separate noise from
an effect. Each difference is also "better" or "worse" by the metric's own
direction (less time, more throughput, fewer failures).

The figures are pure (``compare_cells``, ``compare_udp``); ``write_comparison``
writes ``compare.md``, ``compare.csv`` and ``compare.png`` into
``results/<run-a>/compare-<run-b>/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.report import charts
from orchestrator.report.insights import series_name
from orchestrator.report.load import RunData
from orchestrator.report.model import Cell, optional_float
from orchestrator.report.render import Block, Bullets, Figure, Heading, Paragraph, simple_table, to_markdown
from orchestrator.rows import write_csv

KEY_FIELDS = ("operation", "protocol", "volume", "clients", "workers", "server_pool", "client_pool")
DIGITS = {"time_mean": 4, "throughput": 2, "aggregate": 2}
METRICS = {
    "time_mean": "time per client (s)",
    "throughput": "throughput per client (MiB/s)",
    "aggregate": "aggregate throughput (MiB/s)",
}
COUNTS = ("clients_failed", "server_failed")
HIGHER_IS_BETTER = {"throughput", "aggregate"}  # every other figure (times, failures, loss) is better lower
UDP_KEY = ("model", "payload", "framing", "rate", "receiver")
UDP_METRICS = {"run_seconds_mean": "total time (s)", "loss_percent": "loss (%)"}
CSV_FIELDS = [
    "experiment", "cell_a", "cell_b", "cell", "metric", "a", "b", "difference", "change_percent",
    "a_low", "a_high", "b_low", "b_high", "within_noise", "verdict",
]  # fmt: skip
NO_REPEATS = (
    "Neither run has repeats, so this comparison cannot separate run-to-run noise from an effect: two runs of the "
    "same cells on the same machine can differ by tens of percent per cell. Run both with --repeat 3 to see "
    "which differences are beyond noise."
)
Range = tuple[float, float]


@dataclass(frozen=True)
class Difference:
    """One figure of one matched cell in both runs."""

    cell_a: str
    cell_b: str
    cell: str
    metric: str
    a: float | None
    b: float | None
    range_a: Range | None = None  # lowest and highest over run a's repeats (None: no repeats)
    range_b: Range | None = None

    @property
    def within_noise(self) -> bool | None:
        """Do the runs' ranges overlap? None when neither run has repeats (noise unknown)."""
        if self.a is None or self.b is None or (self.range_a is None and self.range_b is None):
            return None
        low_a, high_a = self.range_a or (self.a, self.a)
        low_b, high_b = self.range_b or (self.b, self.b)
        return low_a <= high_b and low_b <= high_a

    @property
    def verdict(self) -> str:
        """``better``, ``worse`` (run b against run a, by the metric's direction), ``same`` or ``""`` (no figure)."""
        diff = self.difference
        if diff is None:
            return ""
        if diff == 0:
            return "same"
        return "better" if (diff > 0) == (self.metric in HIGHER_IS_BETTER) else "worse"

    @property
    def difference(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def change_percent(self) -> float | None:
        diff = self.difference
        if diff is None or not self.a:
            return 0.0 if diff == 0 else None
        return 100 * diff / self.a


@dataclass
class Comparison:
    """Everything ``compare`` shows."""

    run_a: str
    run_b: str
    ignored: dict[str, tuple[object, object]] = field(default_factory=dict)
    tcp: list[Difference] = field(default_factory=list)
    udp: list[Difference] = field(default_factory=list)
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when every matched figure is the same and no cell is unmatched."""
        return (
            not self.only_a
            and not self.only_b
            and all(d.difference in (0, None) and (d.a is None) == (d.b is None) for d in [*self.tcp, *self.udp])
        )

    @property
    def has_repeats(self) -> bool:
        return any(d.within_noise is not None for d in [*self.tcp, *self.udp])


def _key(cell: Cell, dims: Sequence[str]) -> tuple[object, ...]:
    return tuple(getattr(cell, name) for name in dims)


def _label(cell: Cell, ignored: Mapping[str, object]) -> str:
    """``upload 10MiB, thread pool, c50 w5``, without the settings the match ignores."""
    label = series_name(cell, with_pool="server_pool" not in ignored)
    if "clients" not in ignored:
        label += f", c{cell.clients}"
    if "workers" not in ignored:
        label += f" w{cell.workers}"
    return label


def _range(cell: Cell, metric: str) -> Range | None:
    return cell.range_of(metric) if cell.repeats > 1 else None


def _udp_range(row: Mapping[str, str], metric: str) -> Range | None:
    """mean ± sd of a UDP figure over its runs (only total time has an sd), None for a single run."""
    mean, sd = optional_float(row.get(metric)), optional_float(row.get("run_seconds_sd"))
    if metric != "run_seconds_mean" or mean is None or sd is None or (optional_float(row.get("runs")) or 1) < 2:
        return None
    return mean - sd, mean + sd


def compare_cells(
    a: Sequence[Cell], b: Sequence[Cell]
) -> tuple[list[Difference], dict[str, tuple[object, object]], list[str], list[str]]:
    """Differences of the TCP cells both runs have: (differences, ignored settings, only in a, only in b)."""
    ignored: dict[str, tuple[object, object]] = {}
    for name in KEY_FIELDS:
        values_a, values_b = {getattr(c, name) for c in a}, {getattr(c, name) for c in b}
        if len(values_a) == 1 and len(values_b) == 1 and values_a != values_b:
            ignored[name] = (next(iter(values_a)), next(iter(values_b)))
    dims = [name for name in KEY_FIELDS if name not in ignored]
    index_b = {_key(c, dims): c for c in b}
    diffs: list[Difference] = []
    only_a: list[str] = []
    seen: set[tuple[object, ...]] = set()
    for cell in a:
        other = index_b.get(_key(cell, dims))
        if other is None:
            only_a.append(_label(cell, ignored))
            continue
        seen.add(_key(other, dims))
        label = _label(cell, ignored)
        for metric in METRICS:
            diffs.append(Difference(str(cell.number), str(other.number), label, metric,
                                    getattr(cell, metric), getattr(other, metric),
                                    _range(cell, metric), _range(other, metric)))  # fmt: skip
        for metric in COUNTS:  # a count one run could not measure (None) compares as no figure
            count_a, count_b = getattr(cell, metric), getattr(other, metric)
            diffs.append(Difference(str(cell.number), str(other.number), label, metric,
                                    None if count_a is None else float(count_a),
                                    None if count_b is None else float(count_b)))  # fmt: skip
    only_b = [_label(c, ignored) for c in b if _key(c, dims) not in seen]
    return diffs, ignored, only_a, only_b


def _count(value: float | None) -> str:
    return "-" if value is None else str(int(value))


def compare_udp(a: Sequence[Mapping[str, str]], b: Sequence[Mapping[str, str]]) -> list[Difference]:
    """Differences of the UDP summary rows both runs have."""
    index_b = {tuple(str(r.get(k)) for k in UDP_KEY): r for r in b}
    diffs = []
    for row in a:
        key = tuple(str(row.get(k)) for k in UDP_KEY)
        other = index_b.get(key)
        if other is None:
            continue
        label = f"{row.get('model')} {row.get('payload')} B → {row.get('receiver')}"
        for metric in UDP_METRICS:
            diffs.append(
                Difference("", "", label, metric, optional_float(row.get(metric)), optional_float(other.get(metric)),
                           _udp_range(row, metric), _udp_range(other, metric))
            )  # fmt: skip
    return diffs


def compare_runs(a: RunData, b: RunData) -> Comparison:
    """The cell-by-cell comparison of two loaded runs (pure)."""
    tcp, ignored, only_a, only_b = compare_cells(a.cells, b.cells)
    return Comparison(a.run_id, b.run_id, ignored, tcp, compare_udp(a.udp_summary, b.udp_summary), only_a, only_b)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def comparison_rows(comparison: Comparison) -> list[list[object]]:
    """One row per matched cell: each metric in run a, run b and its change."""
    rows: dict[tuple[str, str, str], list[object]] = {}
    for d in comparison.tcp:
        row = rows.setdefault((d.cell_a, d.cell_b, d.cell), [f"{d.cell_a}/{d.cell_b}", d.cell])
        if d.metric in COUNTS:
            row.append(f"{_count(d.a)} → {_count(d.b)}")  # '-': not measured (a submission's downloads)
        else:
            digits = DIGITS.get(d.metric, 3)
            row += [_fmt(d.a, digits), _fmt(d.b, digits), change_text(d)]
    return list(rows.values())


def change_text(d: Difference) -> str:
    """``+12.3% worse``, ``-4.0% better``, ``+3.1% within noise``, ``0.0%``, ``-``."""
    change = d.change_percent
    if change is None:
        return "-"
    if d.within_noise:
        return f"{change:+.1f}% within noise"
    return f"{change:+.1f}%" + (f" {d.verdict}" if d.verdict in ("better", "worse") else "")


TCP_HEADERS = [
    "No a/b", "Cell", "Time/client s: a", "b", "change", "Throughput/client MiB/s: a", "b", "change",
    "Aggregate MiB/s: a", "b", "change", "Clients failed a → b", "Server failed a → b",
]  # fmt: skip


def noise_summary(comparison: Comparison) -> str:
    """How many differences are beyond the runs' noise, or why that cannot be told."""
    if not comparison.has_repeats:
        return NO_REPEATS
    judged = [d for d in [*comparison.tcp, *comparison.udp] if d.within_noise is not None and d.difference]
    within = [d for d in judged if d.within_noise]
    return (
        f"{len(within)} of {len(judged)} differing figures are within noise: the runs' ranges over their repeats "
        "(lowest to highest) overlap, so the difference may be run-to-run noise, not an effect. The other "
        f"{len(judged) - len(within)} are beyond noise."
    )


def comparison_blocks(comparison: Comparison) -> list[Block]:
    """The comparison as report blocks (see render.py)."""
    blocks: list[Block] = [Heading(1, f"Run {comparison.run_b} against run {comparison.run_a}")]
    if comparison.ignored:
        parts = [
            f"{name} ({a} in {comparison.run_a}, {b} in {comparison.run_b})"
            for name, (a, b) in comparison.ignored.items()
        ]
        blocks.append(Paragraph("Cells matched ignoring " + "; ".join(parts) + "."))
    if comparison.identical:
        verdict = "No differences: every matched figure is the same."
    else:
        verdict = (
            f"{len(comparison_rows(comparison))} matched TCP cells; change = (b - a) / a, marked better or worse "
            f"for run {comparison.run_b} (less time, more throughput, fewer failures are better)."
        )
    blocks.append(Paragraph(verdict))
    if not comparison.identical:
        blocks.append(Paragraph(noise_summary(comparison), note=not comparison.has_repeats))
    if comparison.tcp:
        blocks.append(simple_table(TCP_HEADERS, comparison_rows(comparison)))
    if comparison.udp:
        rows = [[d.cell, UDP_METRICS[d.metric], _fmt(d.a, 4), _fmt(d.b, 4), change_text(d)] for d in comparison.udp]
        blocks += [Heading(2, "UDP"), simple_table(["Model, payload → receiver", "Figure", "a", "b", "change"], rows)]
    if comparison.only_a or comparison.only_b:
        items = [f"only in {comparison.run_a}: {c}" for c in comparison.only_a]
        items += [f"only in {comparison.run_b}: {c}" for c in comparison.only_b]
        blocks += [Heading(2, "Unmatched cells"), Bullets(tuple(items))]
    return blocks


def _shade(d: Difference) -> str:
    """The bar's meaning: better, worse, noise (within the runs' ranges) or same."""
    return "noise" if d.within_noise else (d.verdict or "same")


def write_comparison(comparison: Comparison, out: Path) -> Path:
    """Write compare.md, compare.csv and compare.png (when cells matched) into ``out``; returns compare.md."""
    out.mkdir(parents=True, exist_ok=True)
    csv_rows = [
        {"experiment": kind, "cell_a": d.cell_a, "cell_b": d.cell_b, "cell": d.cell, "metric": d.metric,
         "a": d.a, "b": d.b, "difference": d.difference, "change_percent": d.change_percent,
         "a_low": (d.range_a or ("",))[0], "a_high": (d.range_a or ("", ""))[1],
         "b_low": (d.range_b or ("",))[0], "b_high": (d.range_b or ("", ""))[1],
         "within_noise": "" if d.within_noise is None else str(d.within_noise).lower(), "verdict": d.verdict}
        for kind, diffs in (("tcp", comparison.tcp), ("udp", comparison.udp)) for d in diffs
    ]  # fmt: skip
    write_csv(out / "compare.csv", CSV_FIELDS, csv_rows)
    blocks = comparison_blocks(comparison)
    cells = list(dict.fromkeys(d.cell for d in comparison.tcp))
    if cells:
        changes = {
            title: [next(d for d in comparison.tcp if d.cell == c and d.metric == metric) for c in cells]
            for metric, title in METRICS.items()
        }
        noise = "" if comparison.has_repeats else "\n(no repeats: noise unknown, see compare.md)"
        charts.differences(
            cells,
            {title: [(d.change_percent, _shade(d)) for d in found] for title, found in changes.items()},
            out / "compare.png",
            f"Run {comparison.run_b} against run {comparison.run_a}, per cell{noise}",
        )
        blocks.append(Figure("compare.png", "Differences per cell"))
    path = out / "compare.md"
    path.write_text(to_markdown(blocks, "."), encoding="utf-8")
    return path
