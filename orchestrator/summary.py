"""Per-cell statistics and the summary tables (pure: rows in, numbers and text out).

Per-client figures are over the clients whose transfer succeeded:
throughput per client is the file's volume divided by the mean time per
client, so it always agrees with the time column beside it (the mean of each
client's own rate is larger whenever the clients' times differ, e.g. when
they queue for a worker, and is kept only as its own named column).
Aggregate throughput (all bytes moved / wall time of the cell) is a
separate column. The two are never mixed, unlike the course's
original, which divided per-client figures by the pool size. Volume is the
file's size in bytes; the bytes on the wire (base64 makes an upload 4/3 as
large) are their own column.
"""

from __future__ import annotations

import textwrap
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean, stdev
from typing import NamedTuple

from tabulate import tabulate

from app.sizes import format_size
from orchestrator.matrix import TcpCell

MIB = 1024 * 1024

# Resources of the server and client containers (see orchestrator/telemetry.py).
TELEMETRY_FIELDS = (
    "server_cpu_seconds", "client_cpu_seconds", "server_cpu_percent", "client_cpu_percent", "server_memory_peak_mib",
    "client_memory_peak_mib",
)  # fmt: skip

SUMMARY_FIELDS = [
    "cell_id", "number", "repeat", "operation", "protocol", "volume_bytes", "client_workers", "server_workers",
    "server_pool", "client_pool", "time_per_client_mean_s", "time_per_client_p50_s", "time_per_client_p95_s",
    "time_per_client_max_s", "throughput_per_client_mibps", "throughput_per_client_mean_mibps", "aggregate_mibps",
    "wire_bytes_per_client",
    "clients_ok", "clients_failed", "server_ok", "server_failed", "server_peak_rss_mib", "client_peak_rss_mib",
    *TELEMETRY_FIELDS, "errors", "cpu_problems",
]  # fmt: skip


Row = Mapping[str, str]
Summary = Mapping[str, object]


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def describe_errors(rows: Iterable[Row], limit: int = 3) -> str:
    """``"3x timeout after 60s; 1x server: File not found"`` for the failed rows."""
    counts = Counter(row.get("error") or "unknown error" for row in rows if row.get("status") != "ok")
    return "; ".join(f"{n}x {text}" for text, n in counts.most_common(limit))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _peak_mib(rows: Iterable[Row]) -> float | None:
    peaks = [int(row["peak_rss_kib"]) for row in rows if row.get("peak_rss_kib")]
    return round(max(peaks) / 1024, 1) if peaks else None


def per_client_throughput(volume_bytes: float, mean_seconds: float | None) -> float | None:
    """Throughput per client in MiB/s: the volume each client moved over the mean time per client."""
    return volume_bytes / MIB / mean_seconds if mean_seconds else None


def summarize_cell(
    cell: TcpCell,
    clients: Sequence[Row],
    server: Sequence[Row],
    telemetry: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """One summary row from a cell's client rows, the server's outcome rows and resource figures.

    ``telemetry`` is what ``telemetry.figures`` gives for the roles ``server`` and ``client``.
    """
    ok = [row for row in clients if row.get("status") == "ok"]
    server_ok = [row for row in server if row.get("status") == "ok"]
    seconds = [float(row["seconds"]) for row in ok]
    rates = [float(row["throughput_bps"]) / MIB for row in ok]
    aggregate = None
    if ok:
        span = max(float(r["end"]) for r in ok) - min(float(r["start"]) for r in ok)
        aggregate = sum(int(r["bytes"]) for r in ok) / MIB / span if span > 0 else None
    mean_seconds = fmean(seconds) if seconds else None  # stored to the microsecond: throughput is made from it
    wire = [int(row["wire_bytes"]) for row in ok if row.get("wire_bytes")]
    telemetry = telemetry or {}
    server_errors = [dict(r, error=f"server: {r.get('error')}") for r in server]
    return {
        "cell_id": cell.id,
        "number": cell.number,
        "repeat": cell.repeat,
        "operation": cell.op,
        "protocol": cell.protocol,
        "volume_bytes": cell.volume,
        "client_workers": cell.clients,
        "server_workers": cell.server_workers,
        "server_pool": cell.server_pool,
        "client_pool": cell.client_pool,
        "time_per_client_mean_s": _round(mean_seconds, 6),
        "time_per_client_p50_s": _round(percentile(seconds, 50), 6) if seconds else None,
        "time_per_client_p95_s": _round(percentile(seconds, 95), 6) if seconds else None,
        "time_per_client_max_s": _round(max(seconds), 6) if seconds else None,
        "throughput_per_client_mibps": _round(per_client_throughput(cell.volume, mean_seconds), 2) if seconds else None,
        "throughput_per_client_mean_mibps": _round(fmean(rates), 2) if rates else None,
        "aggregate_mibps": _round(aggregate, 2),
        "wire_bytes_per_client": round(fmean(wire)) if wire else None,
        "clients_ok": len(ok),
        "clients_failed": len(clients) - len(ok),
        "server_ok": len(server_ok),
        "server_failed": len(server) - len(server_ok),
        "server_peak_rss_mib": _peak_mib(server),
        "client_peak_rss_mib": _peak_mib(clients),
        **{key: telemetry.get(key) for key in TELEMETRY_FIELDS},
        "errors": describe_errors([*clients, *server_errors]),
        "cpu_problems": telemetry.get("cpu_problems", ""),
    }


# --- repeats -----------------------------------------------------------------

IDENTITY_FIELDS = frozenset(
    {"cell_id", "number", "repeat", "operation", "protocol", "volume_bytes", "client_workers", "server_workers",
     "server_pool", "client_pool", "repeats"}
)  # fmt: skip
COUNT_FIELDS = ("clients_ok", "clients_failed", "server_ok", "server_failed")
THROUGHPUT = "throughput_per_client_mibps"


class Spread(NamedTuple):
    """A figure over the repeats of a cell: mean, standard deviation, lowest and highest."""

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


def _figure(value: object) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _with_throughput(s: Summary) -> Summary:
    """A summary row with throughput per client; runs stored before that column existed get it computed."""
    if _figure(s.get(THROUGHPUT)) is not None:
        return s
    volume, time = _figure(s.get("volume_bytes")), _figure(s.get("time_per_client_mean_s"))
    throughput = per_client_throughput(volume, time) if volume is not None else None
    return {**s, THROUGHPUT: _round(throughput, 2)}


def combine_repeats(summaries: Sequence[Summary]) -> list[dict[str, object]]:
    """One row per cell number: every figure as a ``Spread`` over its repeats, counts summed.

    Which columns are figures is read from the rows (any column that is not a
    setting, a count or text), so a column added to the summary is combined
    without being listed here. Throughput per client stays volume / mean time.
    """
    groups: dict[int, list[Summary]] = defaultdict(list)
    for s in summaries:
        groups[int(s["number"])].append(_with_throughput(s))  # type: ignore[call-overload]
    combined = []
    for number in sorted(groups):
        rows = groups[number]
        merged: dict[str, object] = dict(rows[0])
        merged["repeats"] = len(rows)
        if len(rows) == 1:
            combined.append(merged)
            continue
        for key in merged:
            if key in IDENTITY_FIELDS or key in COUNT_FIELDS or key == "errors":
                continue
            values = [v for r in rows if (v := _figure(r.get(key))) is not None]
            merged[key] = Spread.of(values) if values else None
        time = merged.get("time_per_client_mean_s")
        if isinstance(time, Spread) and isinstance(merged.get(THROUGHPUT), Spread):
            volume = float(merged["volume_bytes"])  # type: ignore[arg-type]
            merged[THROUGHPUT] = merged[THROUGHPUT]._replace(mean=per_client_throughput(volume, time.mean))  # type: ignore[union-attr]
        for key in COUNT_FIELDS:
            merged[key] = sum(int(r[key]) for r in rows)  # type: ignore[call-overload]
        merged["errors"] = "; ".join(str(r["errors"]) for r in rows if r.get("errors"))
        combined.append(merged)
    return combined


# --- columns and tables ----------------------------------------------------------


def _num(value: object, digits: int) -> str:
    """``1.234``, ``1.234 ± 0.010`` for a Spread over repeats, ``-`` for nothing."""
    if isinstance(value, Spread):
        return f"{value.mean:.{digits}f} ± {value.sd:.{digits}f}"
    number = _figure(value)
    return "-" if number is None else f"{number:.{digits}f}"


@dataclass(frozen=True)
class Column:
    """One column of a summary table: a figure (``key``, ``digits``) or text made by ``show``."""

    header: str
    key: str = ""
    digits: int = 3
    short: str = ""  # header on a terminal, when shorter than ``header``
    show: Callable[[Summary], object] | None = None
    align: str = "right"

    def value(self, s: Summary) -> object:
        return self.show(s) if self.show else _num(s.get(self.key), self.digits)

    def has_data(self, rows: Sequence[Summary]) -> bool:
        return self.show is not None or any(_figure(_plain(r.get(self.key))) is not None for r in rows)


def _plain(value: object) -> object:
    return value.mean if isinstance(value, Spread) else value


def _operation(s: Summary) -> str:
    return str(s["operation"]) if s.get("protocol", "stream") == "stream" else f"{s['operation']} ({s['protocol']})"


NUMBER = Column("No", show=lambda s: s["number"])
# The course report's columns, in its order, then the pool.
COURSE_COLUMNS = [
    NUMBER,
    Column("Operation", show=_operation, align="left"),
    Column("Volume", show=lambda s: format_size(int(s["volume_bytes"]))),  # type: ignore[call-overload]
    Column("Client workers", short="Clients", show=lambda s: s["client_workers"]),
    Column("Server workers", short="Workers", show=lambda s: s["server_workers"]),
    Column("Server pool", short="Pool", show=lambda s: s["server_pool"], align="left"),
    Column("Time/client s (mean)", "time_per_client_mean_s", 3, short="Time/client s"),
    Column("Throughput/client MiB/s (volume / mean time)", THROUGHPUT, 2, short="Throughput/client MiB/s"),
    Column("Clients ok/failed", short="Client ok/fail", show=lambda s: f"{s['clients_ok']}/{s['clients_failed']}"),
    Column("Server ok/failed", short="Server ok/fail", show=lambda s: f"{s['server_ok']}/{s['server_failed']}"),
]
# How the clients' times spread, the figures that are not per client, and the resources used.
# A column no cell has a figure for is left out, so a column added here shows only in runs that have it.
DETAIL_COLUMNS = [
    NUMBER,
    Column("Time/client p50 s", "time_per_client_p50_s", 3, short="p50 s"),
    Column("Time/client p95 s", "time_per_client_p95_s", 3, short="p95 s"),
    Column("Time/client max s", "time_per_client_max_s", 3, short="max s"),
    Column("Mean of client rates MiB/s", "throughput_per_client_mean_mibps", 2, short="Mean of rates MiB/s"),
    Column("Aggregate MiB/s", "aggregate_mibps", 2),
    # Resources: CPU from each container's cgroup counter at the cell's start and end (100 % is one core),
    # memory from docker stats samples while the cell ran, and the processes' own peak RSS.
    Column("Server CPU s", "server_cpu_seconds", 3),
    Column("Client CPU s", "client_cpu_seconds", 3),
    Column("Server CPU %", "server_cpu_percent", 1),
    Column("Client CPU %", "client_cpu_percent", 1),
    Column("Server memory peak MiB", "server_memory_peak_mib", 1, short="Server mem MiB"),
    Column("Client memory peak MiB", "client_memory_peak_mib", 1, short="Client mem MiB"),
    Column("Server process peak RSS MiB", "server_peak_rss_mib", 1, short="Server RSS MiB"),
    Column("Client process peak RSS MiB", "client_peak_rss_mib", 1, short="Client RSS MiB"),
]
DETAILS = "Time spread, aggregate and resources"
TABLES = {"Course columns": COURSE_COLUMNS, DETAILS: DETAIL_COLUMNS}
TERMINAL_WIDTH = 120
HEADER_WRAP = 13  # a terminal header's words are wrapped to lines of this width


def _tabulate(rows: Sequence[Summary], columns: Sequence[Column], tablefmt: str, terminal: bool) -> str:
    headers = [
        "\n".join(textwrap.wrap(c.short or c.header, HEADER_WRAP, break_long_words=False)) if terminal else c.header
        for c in columns
    ]
    body = [[c.value(s) for c in columns] for s in rows]
    align = [c.align for c in columns]
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True, colalign=align)


def fit_width(render: Callable[[Sequence[int]], str], count: int, width: int | None) -> list[str]:
    """``render(columns)`` of all ``count`` columns, split into tables of fewer columns (each keeping
    the first, the cell number) until each is at most ``width`` characters wide."""

    def split(columns: Sequence[int]) -> list[str]:
        text = render(columns)
        if width is None or len(columns) <= 2 or max(map(len, text.splitlines())) <= width:
            return [text]
        half = (len(columns) + 1) // 2
        return split(columns[:half]) + split([columns[0], *columns[half:]])

    return split(range(count))


def wrap_header(header: str) -> str:
    return "\n".join(textwrap.wrap(header, HEADER_WRAP, break_long_words=False))


def summary_tables(
    summaries: Sequence[Summary], tablefmt: str = "github", width: int | None = None
) -> list[tuple[str, str]]:
    """(title, table) pairs: the course's columns, then the time spread and aggregate figures.

    Columns with no figure in any row are left out. With ``width`` (a
    terminal's columns) headers are short and wrapped, and a table wider than
    ``width`` is split in two, each half keeping the cell number.
    """
    rows = combine_repeats(summaries)
    terminal = width is not None
    found = []
    for title, columns in TABLES.items():
        shown = [c for c in columns if c.has_data(rows)]

        def render(chosen: Sequence[int], shown: Sequence[Column] = shown) -> str:
            return _tabulate(rows, [shown[i] for i in chosen], tablefmt, terminal)

        found += [(title, text) for text in fit_width(render, len(shown), width)]
    return found


def render_table(
    summaries: Sequence[Summary], tablefmt: str = "github", lang: str = "en", width: int | None = None
) -> str:
    """The summary tables as one text; ``lang="id"`` gives the course report's own columns per pool mode.

    Several repeats of a cell are combined into mean ± standard deviation.
    """
    if lang == "id":
        parts = []
        for name, rows in laporan_tables(summaries).items():
            fields = laporan_fields(rows)
            headers = [wrap_header(h) for h in fields] if width is not None else fields

            def render(
                chosen: Sequence[int], rows: Sequence[Mapping[str, object]] = rows, fields=fields, headers=headers
            ) -> str:
                body = [[row[fields[i]] for i in chosen] for row in rows]
                return tabulate(body, headers=[headers[i] for i in chosen], tablefmt=tablefmt)

            parts += [f"{name}\n\n{table}" for table in fit_width(render, len(fields), width)]
        return "\n\n".join(parts)
    return "\n\n".join(f"{title}:\n\n{text}" for title, text in summary_tables(summaries, tablefmt, width))


def group_by_setup(rows: Sequence[Summary]) -> dict[str, list[Summary]]:
    """Cells grouped by what the course report kept in separate tables: the pool modes."""
    groups: dict[str, list[Summary]] = defaultdict(list)
    for s in rows:
        name = str(s["server_pool"])
        if s.get("client_pool", "thread") != "thread":
            name += f", client pool {s['client_pool']}"
        groups[name].append(s)
    return dict(groups)


# --- the course's own format: laporan-*.csv ------------------------------------------

# (header, how it is computed): the columns of laporan-*.csv, numbers only, units in the headers.
LAPORAN_COLUMNS = {
    "Nomor": "nomor sel dalam matriks (urutan eksperimen)",
    "Operasi": "upload atau download",
    "Volume": "ukuran berkas seperti ditulis di laporan kursus; 1 MB di sini = 1 MiB = 1.048.576 byte",
    "Volume (byte)": "ukuran berkas yang dikirim setiap client, dalam byte",
    "Jumlah client worker pool": "jumlah client yang berjalan bersamaan",
    "Jumlah server worker pool": "jumlah worker (thread atau proses) di server",
    "Waktu total per client (s)": "rata-rata waktu transfer (detik) dari client yang sukses, dari koneksi dibuka "
    "sampai berkas selesai dan SHA-256 cocok",
    "Throughput per client (MiB/s)": "Volume (byte) / 1.048.576 / Waktu total per client (s): "
    "selalu sesuai dengan kolom waktu di sebelahnya",
    "Jumlah worker client yang sukses": "client yang transfernya selesai dan SHA-256-nya cocok",
    "Jumlah worker client yang gagal": "client yang gagal (penyebabnya ada di summary.csv, kolom errors)",
    "Jumlah worker server yang sukses": "permintaan yang dicatat sukses oleh server sendiri (server.csv)",
    "Jumlah worker server yang gagal": "permintaan yang dicatat gagal oleh server sendiri",
}
LAPORAN_REPEAT_COLUMNS = {
    "Jumlah ulangan": "berapa kali sel dijalankan (--repeat); angka di atas adalah rata-rata, jumlah dijumlahkan",
    "Waktu total per client, simpangan baku (s)": "simpangan baku waktu per client di antara ulangan",
    "Waktu total per client, min (s)": "ulangan tercepat",
    "Waktu total per client, maks (s)": "ulangan terlambat",
    "Throughput per client, simpangan baku (MiB/s)": "simpangan baku throughput per client di antara ulangan",
}


def course_volume(volume_bytes: int) -> str:
    """The volume as the course wrote it: ``10 MB`` for this lab's 10 MiB file."""
    for unit, size in (("MB", MIB), ("KB", 1024)):
        if volume_bytes >= size and volume_bytes % size == 0:
            return f"{volume_bytes // size} {unit}"
    return f"{volume_bytes} B"


def _laporan_row(s: Summary, repeats: bool) -> dict[str, object]:
    time, throughput = s.get("time_per_client_mean_s"), s.get(THROUGHPUT)
    values: list[object] = [
        s["number"], _operation(s), course_volume(int(s["volume_bytes"])), int(s["volume_bytes"]),  # type: ignore[call-overload]
        s["client_workers"], s["server_workers"], _round(_figure(_plain(time)), 6),
        _round(_figure(_plain(throughput)), 2), s["clients_ok"], s["clients_failed"], s["server_ok"],
        s["server_failed"],
    ]  # fmt: skip
    row = dict(zip(LAPORAN_COLUMNS, values, strict=True))
    if repeats:
        spread = [time.sd, time.low, time.high] if isinstance(time, Spread) else [None, _figure(time), _figure(time)]
        sd = throughput.sd if isinstance(throughput, Spread) else None
        extra = [s.get("repeats", 1), *(_round(v, 6) for v in spread), _round(sd, 2)]
        row.update(zip(LAPORAN_REPEAT_COLUMNS, extra, strict=True))
    return row


def laporan_tables(summaries: Sequence[Summary]) -> dict[str, list[dict[str, object]]]:
    """``laporan-<pool>.csv`` contents: the course report's columns, one file per server pool mode.

    Figures are plain numbers (a spreadsheet can plot them), units are in the
    headers, volumes are written as the course wrote them, and the course's
    "N sukses dan M gagal" columns are split into two numeric columns each.
    With repeats, the spread of the time per client over them is added.
    """
    combined = combine_repeats(summaries)
    repeats = any(int(s.get("repeats", 1)) > 1 for s in combined)  # type: ignore[call-overload]
    return {
        "laporan-" + group.replace(", client pool ", "-client-") + ".csv": [_laporan_row(s, repeats) for s in members]
        for group, members in group_by_setup(combined).items()
    }


def laporan_fields(rows: Sequence[Mapping[str, object]]) -> list[str]:
    return list(rows[0]) if rows else list(LAPORAN_COLUMNS)
