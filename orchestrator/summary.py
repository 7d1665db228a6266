"""Per-cell statistics and the summary tables (pure: rows in, numbers and text out).

Per-client figures (time, throughput) are over the clients whose transfer
succeeded; aggregate throughput (all bytes moved / wall time of the cell)
is a separate column. The two are never mixed, unlike the course's
original, which divided per-client figures by the pool size. Volume is the
file's size in bytes; the bytes on the wire (base64 makes an upload 4/3 as
large) are their own column.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from statistics import fmean, stdev

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
    "time_per_client_max_s", "throughput_per_client_mean_mibps", "aggregate_mibps", "wire_bytes_per_client",
    "clients_ok", "clients_failed", "server_ok", "server_failed", "server_peak_rss_mib", "client_peak_rss_mib",
    *TELEMETRY_FIELDS, "errors", "cpu_problems",
]  # fmt: skip

# The course report's columns (SEED-FACTS section 2), verbatim, for --lang id.
SEED_HEADERS_ID = [
    "Nomor", "Operasi", "Volume", "Jumlah client worker pool", "Jumlah server worker pool",
    "Waktu total per client", "Throughput per client", "Jumlah worker client yang sukses dan gagal",
    "Jumlah worker server yang sukses dan gagal",
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
    throughputs = [float(row["throughput_bps"]) / MIB for row in ok]
    aggregate = None
    if ok:
        span = max(float(r["end"]) for r in ok) - min(float(r["start"]) for r in ok)
        aggregate = sum(int(r["bytes"]) for r in ok) / MIB / span if span > 0 else None
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
        "time_per_client_mean_s": _round(fmean(seconds), 4) if seconds else None,
        "time_per_client_p50_s": _round(percentile(seconds, 50), 4) if seconds else None,
        "time_per_client_p95_s": _round(percentile(seconds, 95), 4) if seconds else None,
        "time_per_client_max_s": _round(max(seconds), 4) if seconds else None,
        "throughput_per_client_mean_mibps": _round(fmean(throughputs), 2) if throughputs else None,
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

SPREAD_FIELDS = (
    "time_per_client_mean_s", "time_per_client_p50_s", "time_per_client_p95_s", "time_per_client_max_s",
    "throughput_per_client_mean_mibps", "aggregate_mibps", "server_peak_rss_mib", "client_peak_rss_mib",
)  # fmt: skip
COUNT_FIELDS = ("clients_ok", "clients_failed", "server_ok", "server_failed")


def combine_repeats(summaries: Sequence[Summary]) -> list[dict[str, object]]:
    """One row per cell number: figures as (mean, standard deviation) over its repeats, counts summed."""
    groups: dict[int, list[Summary]] = defaultdict(list)
    for s in summaries:
        groups[int(s["number"])].append(s)  # type: ignore[call-overload]
    combined = []
    for number in sorted(groups):
        rows = groups[number]
        merged: dict[str, object] = dict(rows[0])
        merged["repeats"] = len(rows)
        if len(rows) == 1:
            combined.append(merged)
            continue
        for key in SPREAD_FIELDS:
            values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]  # type: ignore[arg-type]
            merged[key] = (fmean(values), stdev(values) if len(values) > 1 else 0.0) if values else None
        for key in COUNT_FIELDS:
            merged[key] = sum(int(r[key]) for r in rows)  # type: ignore[call-overload]
        merged["errors"] = "; ".join(str(r["errors"]) for r in rows if r.get("errors"))
        combined.append(merged)
    return combined


# --- rendering -----------------------------------------------------------------


def _num(value: object, digits: int) -> str:
    """``1.234``, ``1.234 ± 0.010`` for a (mean, sd) pair, ``-`` for nothing."""
    if value is None or value == "":
        return "-"
    if isinstance(value, tuple):
        mean, sd = value
        return f"{mean:.{digits}f} ± {sd:.{digits}f}"
    return f"{float(value):.{digits}f}"  # type: ignore[arg-type]


def _time_cell(s: Summary) -> str:
    mean = _num(s["time_per_client_mean_s"], 3)
    if s["time_per_client_mean_s"] in (None, ""):
        return mean
    keys = ("time_per_client_p50_s", "time_per_client_p95_s", "time_per_client_max_s")
    spread = "/".join(_num(s[k], 3) for k in keys)
    return f"{mean} ({spread})"


def render_table(summaries: Sequence[Summary], tablefmt: str = "github", lang: str = "en") -> str:
    """The summary in the seed report's column order, rendered with tabulate.

    Several repeats of a cell are combined into mean ± standard deviation.
    ``lang="id"`` gives the course report's exact Indonesian headers, one
    table per server pool mode as in the course report.
    """
    rows = combine_repeats(summaries)
    if lang == "id":
        tables = [
            f"Server pool: {group}\n\n"
            + tabulate([_row_id(s) for s in members], headers=SEED_HEADERS_ID, tablefmt=tablefmt, disable_numparse=True)
            for group, members in group_by_setup(rows).items()
        ]
        return "\n\n".join(tables)
    headers = [
        "No", "Operation", "Volume", "Client workers", "Server workers", "Server pool",
        "Time/client s: mean (p50/p95/max)", "Throughput/client MiB/s", "Aggregate MiB/s",
        "Clients ok/failed", "Server ok/failed", "Peak RSS MiB server/client",
    ]  # fmt: skip
    align = ["right", "left", "right", "right", "right", "left", "right", "right", "right", "right", "right", "right"]
    body = [_row_en(s) for s in rows]
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True, colalign=align)


def group_by_setup(rows: Sequence[Summary]) -> dict[str, list[Summary]]:
    """Cells grouped by what the course report kept in separate tables: the pool modes."""
    groups: dict[str, list[Summary]] = defaultdict(list)
    for s in rows:
        name = str(s["server_pool"])
        if s.get("client_pool", "thread") != "thread":
            name += f", client pool {s['client_pool']}"
        groups[name].append(s)
    return dict(groups)


def _operation(s: Summary) -> str:
    return str(s["operation"]) if s.get("protocol", "stream") == "stream" else f"{s['operation']} ({s['protocol']})"


def _row_en(s: Summary) -> list[object]:
    return [
        s["number"], _operation(s), format_size(int(s["volume_bytes"])),  # type: ignore[call-overload]
        s["client_workers"], s["server_workers"], s["server_pool"], _time_cell(s),
        _num(s["throughput_per_client_mean_mibps"], 2), _num(s["aggregate_mibps"], 2),
        f"{s['clients_ok']}/{s['clients_failed']}", f"{s['server_ok']}/{s['server_failed']}",
        f"{_num(s.get('server_peak_rss_mib'), 1)}/{_num(s.get('client_peak_rss_mib'), 1)}",
    ]  # fmt: skip


def _row_id(s: Summary) -> list[object]:
    """Values for the Indonesian headers: seconds, MiB/s, 'N sukses, M gagal'."""
    return [
        s["number"], _operation(s), s["volume_bytes"], s["client_workers"], s["server_workers"],
        f"{_num(s['time_per_client_mean_s'], 3)} s", f"{_num(s['throughput_per_client_mean_mibps'], 2)} MiB/s",
        f"{s['clients_ok']} sukses, {s['clients_failed']} gagal",
        f"{s['server_ok']} sukses, {s['server_failed']} gagal",
    ]  # fmt: skip


def seed_csv_tables(summaries: Sequence[Summary]) -> dict[str, list[dict[str, object]]]:
    """``laporan-<pool>.csv`` contents: the course report's columns, one file per server pool mode."""
    return {
        "laporan-" + group.replace(", client pool ", "-client-") + ".csv": [
            dict(zip(SEED_HEADERS_ID, _row_id(s), strict=True)) for s in members
        ]
        for group, members in group_by_setup(combine_repeats(summaries)).items()
    }
