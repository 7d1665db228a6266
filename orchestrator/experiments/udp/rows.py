"""The UDP experiment's rows, statistics and table (pure: rows in, numbers and text out).

``merge_cell`` joins what the sender and each receiver wrote for one cell
into one row per receiver (``udp.csv``). ``summarize_udp`` groups those rows
by model and payload size over the repeats (``udp_summary.csv``), and
``render_udp_table`` shows the course report's conclusion, total time per
model, with every receiver's time, loss and integrity beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean, pstdev

from tabulate import tabulate

from orchestrator.experiments.udp.cells import UdpCell
from orchestrator.rows import Column, Table
from orchestrator.tables import fit_width, wrap_header

# The course report's total times at one byte per datagram (its UDP assignment;
# its conclusion misprints them ten times smaller). It had no asyncio or broadcast run.
COURSE_SECONDS = {"process": 0.885, "thread": 0.621, "process-pool": 0.859, "thread-pool": 0.662}

UDP_FIELDS = [
    "cell", "cell_id", "model", "payload", "repeat", "framing", "rate", "receiver", "destination",
    "transfer_id", "run_seconds", "send_seconds", "receive_seconds", "expected_datagrams", "datagrams",
    "unique_datagrams", "lost", "duplicates", "out_of_order", "end_markers", "malformed", "kernel_drops",
    "bytes", "expected_bytes", "expected_sha256", "sha256", "intact", "status", "stopped", "error",
    # the containers of the sender and of this receiver while the cell ran (orchestrator/telemetry.py)
    "sender_cpu_seconds", "sender_cpu_percent", "sender_memory_peak_mib", "receiver_cpu_seconds",
    "receiver_cpu_percent", "receiver_memory_peak_mib", "cpu_problems",
]  # fmt: skip

SUMMARY_FIELDS = [
    "model", "payload", "framing", "rate", "receiver", "runs", "expected_datagrams", "run_seconds_mean",
    "run_seconds_sd", "send_seconds_mean", "receive_seconds_mean", "datagrams", "lost", "loss_percent",
    "duplicates", "out_of_order", "kernel_drops", "intact", "failed", "errors", "sender_cpu_seconds_mean",
    "receiver_cpu_seconds_mean",
]  # fmt: skip

# The one place to add a column: udp.csv (one row per cell and receiver, written cell by cell; it lists the
# finished cells) and udp_summary.csv (one row per model, payload size and receiver, over the repeats:
# made from udp.csv by ``summarize_udp``). Both are kept as text, as the programs wrote them.
UDP = Table("udp.csv", tuple(Column(name, str, "text") for name in UDP_FIELDS))
UDP_SUMMARY = Table("udp_summary.csv", tuple(Column(name, str, "text") for name in SUMMARY_FIELDS))

Row = Mapping[str, object]


def merge_cell(
    cell: UdpCell,
    destinations: Mapping[str, str],
    receivers: Mapping[str, Row | None],
    sender: Sequence[Row],
    problems: Mapping[str, str] | None = None,
) -> list[dict[str, object]]:
    """One row per receiver of ``cell``.

    ``destinations`` maps each receiver to the address the sender sent to
    (the broadcast address for every receiver in broadcast mode);
    ``receivers`` holds each receiver's own CSV row (None: it wrote none);
    ``problems`` holds errors seen from outside, e.g. a sender that failed.
    """
    problems = problems or {}
    by_destination = {str(row.get("destination")): row for row in sender}
    rows = []
    for name, address in destinations.items():
        mine = receivers.get(name)
        sent = by_destination.get(address, {})
        errors = [
            problems.get(name, ""),
            problems.get("sender", ""),
            f"sender: {sent['error']}" if sent.get("error") else "",
            str(mine.get("error") or "") if mine else "",
        ]
        row: dict[str, object] = {
            "cell": cell.number, "cell_id": cell.id, "model": cell.model, "payload": cell.payload,
            "repeat": cell.repeat, "framing": cell.framing, "rate": f"{cell.rate:g}", "receiver": name,
            "destination": address, "transfer_id": sent.get("transfer_id", ""),
            "run_seconds": sent.get("run_seconds", ""), "send_seconds": sent.get("seconds", ""),
        }  # fmt: skip
        if mine:
            row["receive_seconds"] = mine.get("seconds", "")
            for key in UDP_FIELDS:
                if key not in row and key in mine and key != "error":
                    row[key] = mine[key]
        else:
            row.update(intact="false", status="no-report")
            errors.append(f"{name} wrote no result")
        if row.get("intact") != "true" and not row.get("intact"):
            row["intact"] = "false"  # unverifiable counts as not shown intact
        row["error"] = "; ".join(e for e in errors if e)
        rows.append(row)
    return rows


def count_failures(rows: Sequence[Row]) -> int:
    """Receivers (one per row) that did not get the file intact."""
    return sum(1 for row in rows if row.get("intact") != "true")


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _int(value: object) -> int | None:
    number = _float(value)
    return None if number is None else int(number)


def _sum(values: Sequence[int | None]) -> int | None:
    """Total of known values; None if none is known (raw mode cannot count duplicates)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return fmean(known) if known else None


def _group_key(row: Row) -> tuple[str, int, str, str]:
    return str(row["model"]), int(row["payload"]), str(row["framing"]), str(row["rate"])  # type: ignore[call-overload]


def summarize_udp(rows: Sequence[Row]) -> list[dict[str, object]]:
    """One summary row per model, payload size (framing, rate) and receiver, over the repeats."""
    groups: dict[tuple[tuple[str, int, str, str], str], list[Row]] = {}
    # In the matrix's order, whatever order the cells ran in (--shuffle)
    for row in sorted(rows, key=lambda r: (_int(r.get("cell")) or 0, _int(r.get("repeat")) or 0)):
        groups.setdefault((_group_key(row), str(row["receiver"])), []).append(row)
    summaries = []
    for ((model, payload, framing, rate), receiver), members in groups.items():
        run_seconds = [s for s in (_float(r.get("run_seconds")) for r in members) if s is not None]
        expected = [_int(r.get("expected_datagrams")) for r in members]
        lost = _sum([_int(r.get("lost")) for r in members])
        expected_total = _sum(expected)
        errors = sorted({str(r["error"]) for r in members if r.get("error")})
        summaries.append({
            "model": model, "payload": payload, "framing": framing, "rate": rate, "receiver": receiver,
            "runs": len(members), "expected_datagrams": max((e for e in expected if e is not None), default=""),
            "run_seconds_mean": _round(_mean(run_seconds), 6),
            "run_seconds_sd": _round(pstdev(run_seconds), 6) if len(run_seconds) > 1 else "",
            "send_seconds_mean": _round(_mean([_float(r.get("send_seconds")) for r in members]), 6),
            "receive_seconds_mean": _round(_mean([_float(r.get("receive_seconds")) for r in members]), 6),
            "datagrams": _blank(_sum([_int(r.get("datagrams")) for r in members])),
            "lost": _blank(lost),
            "loss_percent": _round(100 * lost / expected_total, 3) if lost is not None and expected_total else "",
            "duplicates": _blank(_sum([_int(r.get("duplicates")) for r in members])),
            "out_of_order": _blank(_sum([_int(r.get("out_of_order")) for r in members])),
            "kernel_drops": _blank(_sum([_int(r.get("kernel_drops")) for r in members])),
            "intact": sum(1 for r in members if r.get("intact") == "true"),
            "failed": sum(1 for r in members if r.get("intact") != "true"),
            "errors": "; ".join(errors)[:500],
            "sender_cpu_seconds_mean": _round(_mean([_float(r.get("sender_cpu_seconds")) for r in members]), 3),
            "receiver_cpu_seconds_mean": _round(_mean([_float(r.get("receiver_cpu_seconds")) for r in members]), 3),
        })  # fmt: skip
    return summaries


def _round(value: float | None, digits: int) -> object:
    return "" if value is None else round(value, digits)


def _blank(value: int | None) -> object:
    return "" if value is None else value


def _seconds(mean: object, sd: object = "") -> str:
    if mean == "" or mean is None:
        return "-"
    text = f"{float(mean):.4f}"  # type: ignore[arg-type]
    return f"{text} ± {float(sd):.4f}" if sd != "" else text  # type: ignore[arg-type]


def _model_label(model: str, framing: str, rate: str) -> str:
    label = model
    if framing != "framed":
        label += " (raw)"
    if rate not in ("0", ""):
        label += f" @{rate}/s"
    return label


def render_udp_table(rows: Sequence[Row], tablefmt: str = "github", width: int | None = None) -> str:
    """Total time per model and payload, like the course's conclusion, with each receiver's figures beside it.

    With ``width`` (a terminal's columns) headers are wrapped and a table
    wider than that is split, each part keeping the row number.
    """
    summaries = summarize_udp(rows)
    receivers = list(dict.fromkeys(str(s["receiver"]) for s in summaries))
    lines: dict[tuple[str, int, str, str], dict[str, dict[str, object]]] = {}
    for s in summaries:
        lines.setdefault(_group_key(s), {})[str(s["receiver"])] = s
    headers = ["No", "Model", "Payload (B)", "Datagrams", "Runs", "Total time (s)", "Course report (s)"]
    for name in receivers:
        headers += [f"{name} time (s)", f"{name} lost", f"{name} dup/reord", f"{name} intact"]
    body = []
    for number, ((model, payload, framing, rate), by_receiver) in enumerate(lines.items(), start=1):
        first = next(iter(by_receiver.values()))
        course = COURSE_SECONDS.get(model) if payload == 1 else None
        line: list[object] = [
            number, _model_label(model, framing, rate), payload, first["expected_datagrams"] or "-", first["runs"],
            _seconds(first["run_seconds_mean"], first["run_seconds_sd"]), f"{course:.3f}" if course else "-",
        ]  # fmt: skip
        for name in receivers:
            s = by_receiver.get(name)
            if s is None:
                line += ["-", "-", "-", "-"]
                continue
            lost = f"{s['lost']} ({float(s['loss_percent']):.2f}%)" if s["loss_percent"] != "" else _dash(s["lost"])
            reord = f"{s['duplicates']}/{s['out_of_order']}" if s["duplicates"] != "" else "-"
            line += [_seconds(s["receive_seconds_mean"]), lost, reord, f"{s['intact']}/{s['runs']}"]
        body.append(line)
    align = ["right", "left", "right", "right", "right", "right", "right"] + ["right"] * 4 * len(receivers)
    if width is not None:
        headers = [wrap_header(h) for h in headers]

    def render(chosen: Sequence[int]) -> str:
        return tabulate(
            [[line[i] for i in chosen] for line in body],
            headers=[headers[i] for i in chosen],
            tablefmt=tablefmt,
            disable_numparse=True,
            colalign=[align[i] for i in chosen],
        )

    return "\n\n".join(fit_width(render, len(headers), width))


def _dash(value: object) -> str:
    return "-" if value in ("", None) else str(value)


def describe_cell(rows: Sequence[Row]) -> str:
    """One progress line for a finished cell: total time, then each receiver's account."""
    if not rows:
        return "no receivers"
    parts = [f"total {_seconds(rows[0].get('run_seconds'))} s"]
    for row in rows:
        got = f"{_dash(row.get('unique_datagrams') or row.get('datagrams'))}/{_dash(row.get('expected_datagrams'))}"
        verdict = "intact" if row.get("intact") == "true" else f"NOT intact ({row.get('status')})"
        parts.append(
            f"{row['receiver']} {got} lost {_dash(row.get('lost'))} dup {_dash(row.get('duplicates'))}"
            f" reord {_dash(row.get('out_of_order'))} {_seconds(row.get('receive_seconds'))} s {verdict}"
        )
    return " | ".join(parts)
