"""Per-cell statistics and the summary table (pure: rows in, numbers and text out).

Per-client figures (time, throughput) are means over the clients whose
transfer succeeded; aggregate throughput (all bytes moved / wall time of the
cell) is a separate column. The two are never mixed, unlike the course's
original, which divided per-client figures by the pool size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from statistics import fmean

from tabulate import tabulate

from app.sizes import format_size
from orchestrator.matrix import TcpCell

MIB = 1024 * 1024

SUMMARY_FIELDS = [
    "number", "operation", "volume_bytes", "client_workers", "server_workers", "server_pool",
    "client_pool", "time_per_client_mean_s", "throughput_per_client_mean_mibps", "aggregate_mibps",
    "clients_ok", "clients_failed", "server_ok", "server_failed", "errors",
]  # fmt: skip

Row = Mapping[str, str]


def _ok(rows: Iterable[Row]) -> list[Row]:
    return [row for row in rows if row.get("status") == "ok"]


def describe_errors(rows: Iterable[Row], limit: int = 3) -> str:
    """``"3x timeout after 60s; 1x server: File not found"`` for the failed rows."""
    counts = Counter(row.get("error") or "unknown error" for row in rows if row.get("status") != "ok")
    return "; ".join(f"{n}x {text}" for text, n in counts.most_common(limit))


def summarize_cell(cell: TcpCell, clients: Sequence[Row], server: Sequence[Row]) -> dict[str, object]:
    """One summary row from a cell's client rows and the server's outcome rows."""
    ok = _ok(clients)
    server_ok = _ok(server)
    seconds = [float(row["seconds"]) for row in ok]
    throughputs = [float(row["throughput_bps"]) / MIB for row in ok]
    aggregate = None
    if ok:
        span = max(float(r["end"]) for r in ok) - min(float(r["start"]) for r in ok)
        aggregate = sum(int(r["bytes"]) for r in ok) / MIB / span if span > 0 else None
    return {
        "number": cell.number,
        "operation": cell.op,
        "volume_bytes": cell.volume,
        "client_workers": cell.clients,
        "server_workers": cell.server_workers,
        "server_pool": cell.server_pool,
        "client_pool": cell.client_pool,
        "time_per_client_mean_s": round(fmean(seconds), 4) if seconds else None,
        "throughput_per_client_mean_mibps": round(fmean(throughputs), 2) if throughputs else None,
        "aggregate_mibps": round(aggregate, 2) if aggregate is not None else None,
        "clients_ok": len(ok),
        "clients_failed": len(clients) - len(ok),
        "server_ok": len(server_ok),
        "server_failed": len(server) - len(server_ok),
        "errors": describe_errors([*clients, *(dict(r, error=f"server: {r.get('error')}") for r in server)]),
    }


def render_table(summaries: Sequence[Mapping[str, object]], tablefmt: str = "github") -> str:
    """The summary in the seed report's column order, rendered with tabulate."""
    headers = [
        "No", "Operation", "Volume", "Client workers", "Server workers", "Server pool",
        "Time/client (s)", "Throughput/client (MiB/s)", "Aggregate (MiB/s)",
        "Clients ok/failed", "Server ok/failed",
    ]  # fmt: skip
    body = [_table_row(s) for s in summaries]
    align = ["right", "left", "right", "right", "right", "left", "right", "right", "right", "right", "right"]
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True, colalign=align)


def _table_row(s: Mapping[str, object]) -> list[object]:
    return [
        s["number"], s["operation"], format_size(int(s["volume_bytes"])),  # type: ignore[call-overload]
        s["client_workers"], s["server_workers"], s["server_pool"],
        _num(s["time_per_client_mean_s"], 3), _num(s["throughput_per_client_mean_mibps"], 2),
        _num(s["aggregate_mibps"], 2),
        f"{s['clients_ok']}/{s['clients_failed']}", f"{s['server_ok']}/{s['server_failed']}",
    ]  # fmt: skip


def _num(value: object, digits: int) -> str:
    return "-" if value is None or value == "" else f"{float(value):.{digits}f}"  # type: ignore[arg-type]
