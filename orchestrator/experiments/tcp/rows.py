"""The TCP experiment's rows: what one cell's run records, and its summary tables (pure).

The one place to add a column: ``SUMMARY`` (summary.csv: written, read back,
merged over repeats) and, to show it, a ``TableColumn`` in ``TABLES``.
``summarize_cell`` computes a cell's summary row from its client and server rows.

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

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean

from tabulate import tabulate

from app.contract import CLIENT_FIELDS, OUTCOME_FIELDS
from app.sizes import format_size
from orchestrator.experiments.tcp.cells import TcpCell
from orchestrator.rows import Column, Merged, Row, Table, write_csv
from orchestrator.tables import fit_width, wrap_header

MIB = 1024 * 1024
THROUGHPUT = "throughput_per_client_mibps"
CLIENT_OUTPUT = "client-output.txt"  # with --client: what the student's own client printed, in the cell's folder


def per_client_throughput(volume_bytes: float | None, mean_seconds: float | None) -> float | None:
    """Throughput per client in MiB/s: the volume each client moved over the mean time per client."""
    return volume_bytes / MIB / mean_seconds if volume_bytes and mean_seconds else None


def _throughput(row: Mapping[str, object]) -> float | None:
    return per_client_throughput(row.get("volume_bytes"), row.get("time_per_client_mean_s"))  # type: ignore[arg-type]


def _key(name: str, kind: type = int) -> Column:
    return Column(name, kind, "key")


# summary.csv: one row per cell run (a repeat). Throughput per client is derived from the volume and
# the mean time, also for runs stored when the file held the mean of the clients' rates there.
SUMMARY = Table(
    "summary.csv",
    (
        _key("cell_id", str), _key("number"), _key("repeat"), _key("operation", str), _key("protocol", str),
        _key("volume_bytes"), _key("client_workers"), _key("server_workers"), _key("server_pool", str),
        _key("client_pool", str),
        Column("time_per_client_mean_s"), Column("time_per_client_p50_s"), Column("time_per_client_p95_s"),
        Column("time_per_client_max_s", merge="peak"), Column(THROUGHPUT), Column("throughput_per_client_mean_mibps"),
        Column("aggregate_mibps"), Column("wire_bytes_per_client"),
        Column("clients_ok", int, "sum"), Column("clients_failed", int, "sum"), Column("server_ok", int, "sum"),
        Column("server_failed", int, "sum"),
        Column("server_peak_rss_mib", merge="peak"), Column("client_peak_rss_mib", merge="peak"),
        # Resources of the server and client containers (see orchestrator/lab/telemetry.py).
        Column("server_cpu_seconds"), Column("client_cpu_seconds"), Column("server_cpu_percent"),
        Column("client_cpu_percent"), Column("server_memory_peak_mib", merge="peak"),
        Column("client_memory_peak_mib", merge="peak"),
        Column("errors", str, "text"), Column("cpu_problems", str, "text"),
    ),
    required=(
        "number", "operation", "volume_bytes", "client_workers", "server_workers", "server_pool",
        "clients_ok", "clients_failed",
    ),
    derived={THROUGHPUT: _throughput},
)  # fmt: skip
SUMMARY_FIELDS = SUMMARY.fields
TELEMETRY_FIELDS = tuple(name for name in SUMMARY_FIELDS if name.endswith(("_cpu_seconds", "_cpu_percent", "_mib"))
                         and name.startswith(("server_c", "client_c", "server_m", "client_m")))  # fmt: skip


def _texts(file: str, fields: Sequence[str]) -> Table:
    """A file of the programs' own rows, kept as text (the node programs define their columns)."""
    return Table(file, tuple(Column(name, str, "text") for name in fields))


# The programs' own rows, merged over all cells, each with the cell it belongs to.
CLIENTS = _texts("clients.csv", ["cell_id", *CLIENT_FIELDS])
SERVER = _texts("server.csv", ["cell_id", "cell", *OUTCOME_FIELDS])


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def describe_errors(rows: Iterable[Mapping[str, object]], limit: int = 3) -> str:
    """``"3x timeout after 60s; 1x server: File not found"`` for the failed rows."""
    counts = Counter(str(row.get("error") or "unknown error") for row in rows if row.get("status") != "ok")
    return "; ".join(f"{n}x {text}" for text, n in counts.most_common(limit))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _peak_mib(rows: Iterable[Mapping[str, object]]) -> float | None:
    peaks = [int(str(row["peak_rss_kib"])) for row in rows if row.get("peak_rss_kib")]
    return round(max(peaks) / 1024, 1) if peaks else None


def summarize_cell(
    cell: TcpCell,
    clients: Sequence[Mapping[str, object]],
    server: Sequence[Mapping[str, object]] | None,
    telemetry: Mapping[str, object] | None = None,
) -> Row:
    """One summary row from a cell's client rows, the server's outcome rows and resource figures.

    ``server`` is None when the server's side could not be measured (a submission's view of a download):
    its counts are then left empty, not zero. ``telemetry`` is what ``telemetry.figures`` gives for the
    roles ``server`` and ``client``.
    """
    measured = server is not None
    server = server or []
    ok = [row for row in clients if row.get("status") == "ok"]
    server_ok = [row for row in server if row.get("status") == "ok"]
    seconds = [float(str(row["seconds"])) for row in ok]
    rates = [float(str(row["throughput_bps"])) / MIB for row in ok]
    aggregate = None
    if ok:
        span = max(float(str(r["end"])) for r in ok) - min(float(str(r["start"])) for r in ok)
        aggregate = sum(int(str(r["bytes"])) for r in ok) / MIB / span if span > 0 else None
    mean_seconds = fmean(seconds) if seconds else None  # stored to the microsecond: throughput is made from it
    wire = [int(str(row["wire_bytes"])) for row in ok if row.get("wire_bytes")]
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
        THROUGHPUT: _round(per_client_throughput(cell.volume, mean_seconds), 2) if seconds else None,
        "throughput_per_client_mean_mibps": _round(fmean(rates), 2) if rates else None,
        "aggregate_mibps": _round(aggregate, 2),
        "wire_bytes_per_client": round(fmean(wire)) if wire else None,
        "clients_ok": len(ok),
        "clients_failed": len(clients) - len(ok),
        "server_ok": len(server_ok) if measured else None,
        "server_failed": len(server) - len(server_ok) if measured else None,
        "server_peak_rss_mib": _peak_mib(server),
        "client_peak_rss_mib": _peak_mib(clients),
        **{key: telemetry.get(key) for key in TELEMETRY_FIELDS},
        "errors": describe_errors([*clients, *server_errors]),
        "cpu_problems": telemetry.get("cpu_problems", ""),
    }


def failures(rows: Iterable[Mapping[str, object]]) -> int:
    """Failed transfers of summary rows: clients and server records that did not say ok (unmeasured: none)."""
    return sum(int(row["clients_failed"] or 0) + int(row["server_failed"] or 0) for row in rows)  # type: ignore[call-overload]


# --- columns and tables ----------------------------------------------------------

Summaries = Sequence[Mapping[str, object]]  # typed summary rows (summarize_cell, or SUMMARY.read)


def merge_repeats(summaries: Summaries) -> list[Merged]:
    """One ``Merged`` per cell number: the one merge of repeats, for the tables and the report alike."""
    return SUMMARY.merge(summaries)


def _num(m: Merged, key: str, digits: int) -> str:
    """``1.234``; ``1.234 ± 0.010`` for a mean over repeats (a peak is its highest value); ``-`` for nothing."""
    value = m.values.get(key)
    if value is None:
        return "-"
    spread = m.spread.get(key)
    if spread is not None and SUMMARY_MERGE.get(key) != "peak":
        return f"{spread.mean:.{digits}f} ± {spread.sd:.{digits}f}"
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


SUMMARY_MERGE = {c.name: c.merge for c in SUMMARY.columns}


@dataclass(frozen=True)
class TableColumn:
    """One column of a summary table: a figure (``key``, ``digits``) or text made by ``show``."""

    header: str
    key: str = ""
    digits: int = 3
    short: str = ""  # header on a terminal, when shorter than ``header``
    show: Callable[[Mapping[str, object]], object] | None = None
    align: str = "right"

    def value(self, m: Merged) -> object:
        return self.show(m.values) if self.show else _num(m, self.key, self.digits)

    def has_data(self, rows: Sequence[Merged]) -> bool:
        return self.show is not None or any(m.values.get(self.key) is not None for m in rows)


def ok_failed(s: Mapping[str, object], side: str) -> str:
    """``5/0``; ``-`` where that side was not measured (a submission's server on a download)."""
    ok, failed = s[f"{side}_ok"], s[f"{side}_failed"]
    return "-" if ok is None else f"{ok}/{failed}"


def _operation(s: Mapping[str, object]) -> str:
    return str(s["operation"]) if s.get("protocol", "stream") == "stream" else f"{s['operation']} ({s['protocol']})"


NUMBER = TableColumn("No", show=lambda s: s["number"])
# The course report's columns, in its order, then the pool.
COURSE_COLUMNS = [
    NUMBER,
    TableColumn("Operation", show=_operation, align="left"),
    TableColumn("Volume", show=lambda s: format_size(int(s["volume_bytes"]))),  # type: ignore[call-overload]
    TableColumn("Client workers", short="Clients", show=lambda s: s["client_workers"]),
    TableColumn("Server workers", short="Workers", show=lambda s: s["server_workers"]),
    TableColumn("Server pool", short="Pool", show=lambda s: s["server_pool"], align="left"),
    TableColumn("Time/client s (mean)", "time_per_client_mean_s", 3, short="Time/client s"),
    TableColumn("Throughput/client MiB/s (volume / mean time)", THROUGHPUT, 2, short="Throughput/client MiB/s"),
    TableColumn("Clients ok/failed", short="Client ok/fail", show=lambda s: ok_failed(s, "clients")),
    TableColumn("Server ok/failed", short="Server ok/fail", show=lambda s: ok_failed(s, "server")),
]
# How the clients' times spread, the figures that are not per client, and the resources used.
# A column no cell has a figure for is left out, so a column added here shows only in runs that have it.
DETAIL_COLUMNS = [
    NUMBER,
    TableColumn("Time/client p50 s", "time_per_client_p50_s", 3, short="p50 s"),
    TableColumn("Time/client p95 s", "time_per_client_p95_s", 3, short="p95 s"),
    TableColumn("Time/client max s", "time_per_client_max_s", 3, short="max s"),
    TableColumn("Mean of client rates MiB/s", "throughput_per_client_mean_mibps", 2, short="Mean of rates MiB/s"),
    TableColumn("Aggregate MiB/s", "aggregate_mibps", 2),
    # Resources: CPU from each container's cgroup counter at the cell's start and end (100 % is one core),
    # memory from docker stats samples while the cell ran, and the processes' own peak RSS.
    TableColumn("Server CPU s", "server_cpu_seconds", 3),
    TableColumn("Client CPU s", "client_cpu_seconds", 3),
    TableColumn("Server CPU %", "server_cpu_percent", 1),
    TableColumn("Client CPU %", "client_cpu_percent", 1),
    TableColumn("Server memory peak MiB", "server_memory_peak_mib", 1, short="Server mem MiB"),
    TableColumn("Client memory peak MiB", "client_memory_peak_mib", 1, short="Client mem MiB"),
    TableColumn("Server process peak RSS MiB", "server_peak_rss_mib", 1, short="Server RSS MiB"),
    TableColumn("Client process peak RSS MiB", "client_peak_rss_mib", 1, short="Client RSS MiB"),
]
DETAILS = "Time spread, aggregate and resources"
TABLES = {"Course columns": COURSE_COLUMNS, DETAILS: DETAIL_COLUMNS}


def _tabulate(rows: Sequence[Merged], columns: Sequence[TableColumn], tablefmt: str, terminal: bool) -> str:
    headers = [wrap_header(c.short or c.header) if terminal else c.header for c in columns]
    body = [[c.value(m) for c in columns] for m in rows]
    align = [c.align for c in columns]
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True, colalign=align)


def summary_tables(summaries: Summaries, tablefmt: str = "github", width: int | None = None) -> list[tuple[str, str]]:
    """(title, table) pairs: the course's columns, then the time spread and aggregate figures.

    Columns with no figure in any row are left out. With ``width`` (a
    terminal's columns) headers are short and wrapped, and a table wider than
    ``width`` is split in two, each half keeping the cell number.
    """
    rows = merge_repeats(summaries)
    terminal = width is not None
    found = []
    for title, columns in TABLES.items():
        shown = [c for c in columns if c.has_data(rows)]

        def render(chosen: Sequence[int], shown: Sequence[TableColumn] = shown) -> str:
            return _tabulate(rows, [shown[i] for i in chosen], tablefmt, terminal)

        found += [(title, text) for text in fit_width(render, len(shown), width)]
    return found


def render_table(summaries: Summaries, tablefmt: str = "github", lang: str = "en", width: int | None = None) -> str:
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


def group_by_setup(rows: Sequence[Merged]) -> dict[str, list[Merged]]:
    """Cells grouped by what the course report kept in separate tables: the pool modes."""
    groups: dict[str, list[Merged]] = defaultdict(list)
    for m in rows:
        name = str(m.values["server_pool"])
        if (m.values.get("client_pool") or "thread") != "thread":
            name += f", client pool {m.values['client_pool']}"
        groups[name].append(m)
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


def _laporan_row(m: Merged, repeats: bool) -> dict[str, object]:
    s = m.values
    values: list[object] = [
        s["number"], _operation(s), course_volume(int(s["volume_bytes"])), int(s["volume_bytes"]),  # type: ignore[call-overload]
        s["client_workers"], s["server_workers"], _round(s["time_per_client_mean_s"], 6),  # type: ignore[arg-type]
        _round(s[THROUGHPUT], 2), s["clients_ok"], s["clients_failed"], s["server_ok"],  # type: ignore[arg-type]
        s["server_failed"],
    ]  # fmt: skip
    row = dict(zip(LAPORAN_COLUMNS, values, strict=True))
    if repeats:
        time, throughput = m.spread.get("time_per_client_mean_s"), m.spread.get(THROUGHPUT)
        single = s["time_per_client_mean_s"]
        spread = [time.sd, time.low, time.high] if time else [None, single, single]
        extra = [m.repeats, *(_round(v, 6) for v in spread), _round(throughput.sd if throughput else None, 2)]  # type: ignore[arg-type]
        row.update(zip(LAPORAN_REPEAT_COLUMNS, extra, strict=True))
    return row


def laporan_tables(summaries: Summaries) -> dict[str, list[dict[str, object]]]:
    """``laporan-<pool>.csv`` contents: the course report's columns, one file per server pool mode.

    Figures are plain numbers (a spreadsheet can plot them), units are in the
    headers, volumes are written as the course wrote them, and the course's
    "N sukses dan M gagal" columns are split into two numeric columns each.
    With repeats, the spread of the time per client over them is added.
    """
    merged = merge_repeats(summaries)
    repeats = any(m.repeats > 1 for m in merged)
    return {
        "laporan-" + group.replace(", client pool ", "-client-") + ".csv": [_laporan_row(m, repeats) for m in members]
        for group, members in group_by_setup(merged).items()
    }


def laporan_fields(rows: Sequence[Mapping[str, object]]) -> list[str]:
    return list(rows[0]) if rows else list(LAPORAN_COLUMNS)


def write_laporan(folder: Path, summaries: Summaries) -> list[Path]:
    """``laporan-<pool>.csv``: the course report's columns as numbers, one file per server pool mode."""
    written = []
    for name, rows in laporan_tables(summaries).items():
        write_csv(folder / name, laporan_fields(rows), rows)
        written.append(folder / name)
    return written
