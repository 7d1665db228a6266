"""The report's charts: matplotlib figures saved as PNG (rows in, files out; no display needed).

Figures are made with matplotlib's object API and the Agg canvas, never
pyplot's global state, so they render headless and side by side. Every
chart has a title, axis labels with units and a legend whose entries have
distinct colours; a chart with no data at all is not drawn (the function
returns None and the report says why in words), and a panel of a chart that
has no data says so in words instead of showing empty axes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, LogLocator, MaxNLocator, NullFormatter, NullLocator, ScalarFormatter

from app.sizes import format_size
from orchestrator.report.model import Cell, optional_float
from orchestrator.report.original import Match

DPI = 100
POOL_ORDER = {"thread": 0, "process": 1}
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
WAIT, TRANSFER, FAILED = "#b0b0b0", "#1f77b4", "#d62728"


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, format="png")
    return path


def _series_key(cell: Cell) -> tuple[str, str, int, str]:
    return cell.operation, cell.protocol, cell.volume, cell.client_pool


def _series_title(key: tuple[str, str, int, str]) -> str:
    operation, protocol, volume, client_pool = key
    text = operation if protocol == "stream" else f"{operation} ({protocol})"
    text += f" {format_size(volume)}"
    return text if client_pool == "thread" else f"{text}, {client_pool} clients"


def _pools(cells: Sequence[Cell]) -> list[str]:
    return sorted({c.server_pool for c in cells}, key=lambda p: (POOL_ORDER.get(p, 9), p))


def _plain_log(axis) -> None:
    """Ticks of a log axis at 1, 2 and 5 times powers of ten, written as plain numbers."""
    axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def _client_axis(axes, counts: Sequence[int]) -> None:
    """Client counts as ticks; a log scale when they span a factor of 10 or more (1, 5, 50)."""
    counts = sorted(set(counts))
    if counts and counts[-1] / max(counts[0], 1) >= 10:
        axes.set_xscale("log")
        axes.xaxis.set_minor_locator(NullLocator())
        axes.xaxis.set_minor_formatter(NullFormatter())
    axes.xaxis.set_major_locator(FixedLocator(counts))
    axes.set_xticklabels([str(c) for c in counts])


def metric_grid(
    cells: Sequence[Cell],
    attribute: str,
    path: Path,
    title: str,
    ylabel: str,
) -> Path | None:
    """One panel per operation and volume (rows) and server pool (columns): the Cell figure ``attribute``
    against the number of clients, one line per server worker count; with repeats, a bar from the
    lowest to the highest repeat."""

    def metric(cell: Cell) -> float | None:
        return getattr(cell, attribute)

    series: dict[tuple[str, str, int, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        if metric(cell) is not None:
            series[_series_key(cell)].append(cell)
    if not series:
        return None
    pools = _pools(cells)
    rows = sorted(series)
    figure, grid = _series_grid(len(rows), pools, row_height=3.4)
    workers = sorted({c.workers for c in cells})
    colour = {w: COLOURS[i % len(COLOURS)] for i, w in enumerate(workers)}
    for r, key in enumerate(rows):
        for p, pool in enumerate(pools):
            axes = grid[r][p]
            members = [c for c in series[key] if c.server_pool == pool]
            for w in workers:
                line = sorted((c for c in members if c.workers == w), key=lambda c: c.clients)
                if line:
                    xs, ys = [c.clients for c in line], [metric(c) for c in line]
                    axes.plot(xs, ys, marker="o", color=colour[w], label=f"{w} server worker{'s' * (w != 1)}")
                    ranges = [c.range_of(attribute) for c in line]
                    if any(c.repeats > 1 for c in line):
                        below = [y - r[0] if r else 0.0 for y, r in zip(ys, ranges, strict=True)]  # type: ignore[operator]
                        above = [r[1] - y if r else 0.0 for y, r in zip(ys, ranges, strict=True)]  # type: ignore[operator]
                        axes.errorbar(xs, ys, yerr=[below, above], fmt="none", ecolor=colour[w], capsize=3)
            _client_axis(axes, [c.clients for c in series[key]])
            axes.set_title(f"{_series_title(key)}: {pool} pool", fontsize=10)
            axes.set_xlabel("concurrent clients")
            axes.set_ylabel(ylabel)
            axes.grid(True, alpha=0.3)
            if not members:
                axes.text(0.5, 0.5, "no cells", ha="center", va="center", transform=axes.transAxes)
            else:
                axes.legend(fontsize=8)
        top = max(max(c.range_of(attribute) or (0.0, 0.0)) for c in series[key])
        grid[r][0].set_ylim(0, top * 1.08 if top > 0 else 1.0)  # the row shares its y axis
    figure.suptitle(title, fontsize=12)
    return _save(figure, path)


def _series_grid(rows: int, pools: Sequence[str], row_height: float) -> tuple[Figure, Any]:
    """A figure with one row of panels per series and one column per pool; each row shares its y axis."""
    figure = Figure(figsize=(5.2 * len(pools) + 0.8, row_height * rows + 1.1), layout="constrained")
    return figure, figure.subplots(rows, len(pools), squeeze=False, sharey="row")


def _client_seconds(clients: Sequence[Mapping[str, str]]) -> dict[str, list[float]]:
    """cell_id -> seconds of each successful client transfer."""
    found: dict[str, list[float]] = defaultdict(list)
    for row in clients:
        if row.get("status") == "ok":
            value = optional_float(row.get("seconds"))
            if value is not None:
                found[str(row.get("cell_id"))].append(value)
    return found


def time_distribution(cells: Sequence[Cell], clients: Sequence[Mapping[str, str]], path: Path) -> Path | None:
    """Box plots of time per client, one box per cell (clients and workers), panels by series and pool."""
    seconds = _client_seconds(clients)
    data: dict[tuple[str, str, int, str], dict[str, list[tuple[str, list[float]]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for cell in sorted(cells, key=lambda c: (c.clients, c.workers)):
        values = [s for cell_id in cell.cell_ids for s in seconds.get(cell_id, [])]
        if values:
            data[_series_key(cell)][cell.server_pool].append((f"c{cell.clients}\nw{cell.workers}", values))
    if not data:
        return None
    pools = _pools(cells)
    rows = sorted(data)
    figure, grid = _series_grid(len(rows), pools, row_height=3.6)
    for r, key in enumerate(rows):
        everything = [v for boxes in data[key].values() for _, values in boxes for v in values]
        for p, pool in enumerate(pools):
            axes = grid[r][p]
            boxes = data[key].get(pool, [])
            if boxes:
                labels, values = zip(*boxes, strict=True)
                axes.boxplot(values, tick_labels=labels, patch_artist=True, boxprops={"facecolor": "#c6dbef"})
            else:
                axes.text(0.5, 0.5, "no successful transfer", ha="center", va="center", transform=axes.transAxes)
            if min(everything) > 0 and max(everything) / min(everything) > 50:
                axes.set_yscale("log")
                _plain_log(axes.yaxis)
            axes.set_title(f"{_series_title(key)}: {pool} pool", fontsize=10)
            axes.set_xlabel("c = concurrent clients, w = server workers")
            axes.set_ylabel("time per client (s)")
            axes.grid(True, axis="y", alpha=0.3)
    figure.suptitle("Time per client: distribution over the clients of each cell (successful transfers)", fontsize=12)
    figure.legend(
        handles=[
            Patch(facecolor="#c6dbef", edgecolor="black", label="box: quartiles, line: median, whiskers: 1.5 IQR")
        ],
        loc="outside lower center",
        fontsize=8,
    )
    return _save(figure, path)


def _timeline_rows(
    cell_id: str, clients: Sequence[Mapping[str, str]], server: Sequence[Mapping[str, str]]
) -> list[tuple[float, float | None, float, bool]]:
    """(client start, server start or None, client end, ok) per client of one cell, by start time."""
    accepted = {}
    for row in server:
        if row.get("cell_id") == cell_id and row.get("peer_port"):
            start = optional_float(row.get("start"))
            if start is not None:
                accepted[str(row["peer_port"])] = start
    bars = []
    for row in clients:
        if row.get("cell_id") != cell_id:
            continue
        start, end = optional_float(row.get("start")), optional_float(row.get("end"))
        if start is None or end is None:
            continue
        served = accepted.get(str(row.get("local_port") or ""))
        bars.append((start, served, end, row.get("status") == "ok"))
    return sorted(bars)


def _draw_timeline(axes, bars: Sequence[tuple[float, float | None, float, bool]]) -> None:
    """One horizontal bar per client: queued (grey), then transferring (blue, red if it failed).

    A client that gave up before a worker took its connection (the server's
    record starts after the client's end) is queued all along: grey with red
    hatching. A client the server has no record of is hatched in black.
    """
    origin = bars[0][0]
    waits: list[tuple[int, float, float]] = []
    transfers: list[tuple[int, float, float, str]] = []
    gave_up: list[tuple[int, float, float]] = []
    unmatched: list[tuple[int, float, float, str]] = []
    for y, (start, served, end, ok) in enumerate(bars, start=1):
        colour = TRANSFER if ok else FAILED
        if served is None:
            unmatched.append((y, start - origin, end - start, colour))
        elif served >= end and not ok:
            gave_up.append((y, start - origin, end - start))
        else:
            served = min(max(served, start), end)
            waits.append((y, start - origin, served - start))
            transfers.append((y, served - origin, end - served, colour))
    if waits:
        ys, lefts, widths = zip(*waits, strict=True)
        axes.barh(ys, widths, left=lefts, color=WAIT, height=0.8)
    if transfers:
        ys, lefts, widths, colours = zip(*transfers, strict=True)
        axes.barh(ys, widths, left=lefts, color=colours, height=0.8)
    if gave_up:
        ys, lefts, widths = zip(*gave_up, strict=True)
        axes.barh(ys, widths, left=lefts, color=WAIT, edgecolor=FAILED, hatch="//", height=0.8)
    if unmatched:
        ys, lefts, widths, colours = zip(*unmatched, strict=True)
        axes.barh(ys, widths, left=lefts, color=colours, edgecolor="black", hatch="//", height=0.8)


def timelines(
    cells: Sequence[Cell],
    clients: Sequence[Mapping[str, str]],
    server: Sequence[Mapping[str, str]],
    folder: Path,
) -> list[Path]:
    """Per-client timelines of the cells with the most clients (50 in the full matrix), one figure per series.

    Each client is a bar from its start to its end: grey while it waits for a
    server worker to take its connection (up to the server's own start
    time for it, matched by the client's port), then the transfer itself;
    failed transfers are red.
    """
    if not cells:
        return []
    most = max(c.clients for c in cells)
    if most < 2:
        return []
    series: dict[tuple[str, str, int, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        if cell.clients == most and cell.cell_ids:
            series[_series_key(cell)].append(cell)
    written = []
    for key in sorted(series):
        members = sorted(series[key], key=lambda c: (POOL_ORDER.get(c.server_pool, 9), c.workers))
        pools = _pools(members)
        workers = sorted({c.workers for c in members})
        figure = Figure(figsize=(4.6 * len(workers) + 1.0, 0.09 * most * len(pools) + 2.6 * len(pools) + 0.8))
        figure.set_layout_engine("constrained")
        grid = figure.subplots(len(pools), len(workers), squeeze=False)
        drawn = False
        for p, pool in enumerate(pools):
            for w, count in enumerate(workers):
                axes = grid[p][w]
                cell = next((c for c in members if c.server_pool == pool and c.workers == count), None)
                bars = _timeline_rows(cell.cell_ids[0], clients, server) if cell else []
                axes.set_title(f"{pool} pool, {count} server worker{'s' * (count != 1)}", fontsize=10)
                axes.set_xlabel("seconds since the first client started")
                axes.set_ylabel("client, in order of start")
                if not bars:
                    axes.text(0.5, 0.5, "no client rows", ha="center", va="center", transform=axes.transAxes)
                    continue
                drawn = True
                _draw_timeline(axes, bars)
                axes.set_ylim(len(bars) + 0.6, 0.4)  # the first client on top
                axes.yaxis.set_major_locator(MaxNLocator(integer=True))
                axes.grid(True, axis="x", alpha=0.3)
        if not drawn:
            continue
        figure.suptitle(f"Per-client timeline, {_series_title(key)}, {most} concurrent clients", fontsize=12)
        figure.legend(
            handles=[
                Patch(color=WAIT, label="queued: waiting for a server worker"),
                Patch(color=TRANSFER, label="transfer (server worker busy)"),
                Patch(color=FAILED, label="failed transfer"),
                Patch(facecolor=WAIT, edgecolor=FAILED, hatch="//", label="failed while still queued"),
                Patch(facecolor="white", edgecolor="black", hatch="//", label="no server record of the connection"),
            ],
            loc="outside lower center",
            ncols=3,
            fontsize=8,
        )
        name = "timeline-" + _series_title(key).replace(" ", "-").replace(",", "").replace("(", "").replace(")", "")
        written.append(_save(figure, folder / f"{name}.png"))
    return written


def resources(cells: Sequence[Cell], path: Path) -> Path | None:
    """CPU and peak memory of the server and client containers, per cell (None: no sample at all)."""
    figure = resources_figure(cells)
    return _save(figure, path) if figure else None


NO_SAMPLE = {  # why a panel of the resources chart is empty
    "CPU": "no CPU sample: no cell has a CPU counter reading (an older run, or see cpu_problems)",
    "memory": "no memory sample: every cell ended before docker stats' first sample (about 1 s)",
}


def resources_figure(cells: Sequence[Cell]) -> Figure | None:
    """The resources chart; a panel with no sample says so in words."""
    shown = [
        c for c in cells if any(v is not None for v in (c.server_cpu, c.client_cpu, c.server_memory, c.client_memory))
    ]
    if not shown:
        return None
    width = max(8.0, 0.22 * len(cells) + 2)
    figure = Figure(figsize=(width, 7.0), layout="constrained")
    cpu_axes, memory_axes = figure.subplots(2, 1, sharex=True)
    xs = list(range(len(cells)))
    colours = {"server": COLOURS[0], "client": COLOURS[1]}
    for axes, pairs, ylabel, what in (
        (cpu_axes, (("server", "server_cpu"), ("client", "client_cpu")), "mean CPU (% of one core)", "CPU"),
        (memory_axes, (("server", "server_memory"), ("client", "client_memory")), "peak memory (MiB)", "memory"),
    ):
        handles = []
        for offset, (who, attribute) in zip((-0.2, 0.2), pairs, strict=True):
            points = [
                (x + offset, v) for x, c in zip(xs, cells, strict=True) if (v := getattr(c, attribute)) is not None
            ]
            if points:
                axes.bar(*zip(*points, strict=True), width=0.4, color=colours[who], label=f"{who} container")
                handles.append(who)
        axes.set_ylabel(ylabel)
        axes.grid(True, axis="y", alpha=0.3)
        if handles:
            axes.legend(fontsize=8)  # only series that were drawn: each entry has its bars' colour
        else:
            axes.set_yticks([])
            axes.text(
                0.5, 0.5,
                NO_SAMPLE[what],
                ha="center", va="center", transform=axes.transAxes, fontsize=10,
            )  # fmt: skip
    rss = [(x, c.server_rss) for x, c in zip(xs, cells, strict=True) if c.server_rss is not None]
    if rss:
        memory_axes.scatter(*zip(*rss, strict=True), marker="_", s=120, color="black", label="server process peak RSS")
        memory_axes.legend(fontsize=8)  # bars (by label) and the RSS marks
    cpu_axes.set_title("Server and client containers while each cell ran (CPU: cgroup counters)", fontsize=12)
    memory_axes.set_xlabel("cell number (memory: docker stats, 1 s samples; a shorter cell may have none)")
    memory_axes.set_xticks(xs)
    memory_axes.set_xticklabels([str(c.number) for c in cells], fontsize=7, rotation=90 if len(cells) > 40 else 0)
    return figure


def _udp_groups(rows: Sequence[Mapping[str, str]]) -> dict[int, list[Mapping[str, str]]]:
    groups: dict[int, list[Mapping[str, str]]] = defaultdict(list)
    for row in rows:
        payload = optional_float(row.get("payload"))
        if payload is not None:
            groups[int(payload)].append(row)
    return groups


def udp_time(rows: Sequence[Mapping[str, str]], path: Path, course: Mapping[str, float] | None = None) -> Path | None:
    """Total time per UDP model (start to last join), one panel per payload size, the course's figures beside."""
    groups = _udp_groups(rows)
    panels = []
    for payload, members in sorted(groups.items()):
        models: dict[str, tuple[float, float]] = {}
        for row in members:
            mean = optional_float(row.get("run_seconds_mean"))
            if mean is not None and str(row.get("model")) not in models:
                models[str(row.get("model"))] = (mean, optional_float(row.get("run_seconds_sd")) or 0.0)
        if models:
            panels.append((payload, models))
    if not panels:
        return None
    figure = Figure(figsize=(5.6 * len(panels) + 0.6, 4.4), layout="constrained")
    grid = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (payload, models) in zip(grid, panels, strict=True):
        names = list(models)
        xs = range(len(names))
        heights, errors = [models[m][0] for m in names], [models[m][1] for m in names]
        axes.bar(xs, heights, yerr=errors, color=COLOURS[0], label="this run")
        if payload == 1 and course:
            marks = [(x, course[m]) for x, m in zip(xs, names, strict=True) if m in course]
            if marks:
                axes.scatter(*zip(*marks, strict=True), marker="D", color="black", zorder=3, label="course report")
        axes.set_xticks(list(xs))
        axes.set_xticklabels(names, rotation=20, ha="right")
        axes.set_title(f"{payload} byte{'s' * (payload != 1)} per datagram", fontsize=10)
        axes.set_xlabel("sender's concurrency model")
        axes.set_ylabel("total time to both receivers (s)")
        axes.grid(True, axis="y", alpha=0.3)
        axes.legend(fontsize=8)
    figure.suptitle("UDP: time per model, start to last join (mean over repeats; bars: sd)", fontsize=12)
    return _save(figure, path)


def udp_loss(rows: Sequence[Mapping[str, str]], path: Path) -> Path | None:
    """Datagrams lost per receiver and model, one panel per payload size."""
    groups = _udp_groups(rows)
    panels = []
    for payload, members in sorted(groups.items()):
        models = list(dict.fromkeys(str(r.get("model")) for r in members))
        receivers = list(dict.fromkeys(str(r.get("receiver")) for r in members))
        loss = {(str(r.get("model")), str(r.get("receiver"))): optional_float(r.get("loss_percent")) for r in members}
        if any(v is not None for v in loss.values()):
            panels.append((payload, models, receivers, loss))
    if not panels:
        return None
    figure = Figure(figsize=(5.6 * len(panels) + 0.6, 4.4), layout="constrained")
    grid = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (payload, models, receivers, loss) in zip(grid, panels, strict=True):
        width = 0.8 / max(len(receivers), 1)
        top = 0.0
        for i, receiver in enumerate(receivers):
            values = [loss.get((m, receiver)) or 0.0 for m in models]
            top = max(top, *values)
            xs = [x - 0.4 + width * (i + 0.5) for x in range(len(models))]
            axes.bar(xs, values, width=width, color=COLOURS[i % len(COLOURS)], label=receiver)
        axes.set_ylim(0, max(1.0, top * 1.15))
        if top == 0:
            axes.text(0.5, 0.6, "no datagram lost", ha="center", va="center", transform=axes.transAxes)
        axes.set_xticks(list(range(len(models))))
        axes.set_xticklabels(models, rotation=20, ha="right")
        axes.set_title(f"{payload} byte{'s' * (payload != 1)} per datagram", fontsize=10)
        axes.set_xlabel("sender's concurrency model")
        axes.set_ylabel("datagrams lost (%)")
        axes.grid(True, axis="y", alpha=0.3)
        axes.legend(title="receiver", fontsize=8)
    figure.suptitle("UDP: loss per receiver (all repeats)", fontsize=12)
    return _save(figure, path)


def original_comparison(matches: Sequence[Match], path: Path) -> Path | None:
    """This run's throughput per client against the original's, one point per shared cell (log-log)."""
    points = [m for m in matches if m.throughput_ratio is not None]
    if not points:
        return None
    figure = Figure(figsize=(7.0, 6.2), layout="constrained")
    axes = figure.subplots()
    markers = {"upload": "o", "download": "s"}
    for pool, colour in (("thread", COLOURS[0]), ("process", COLOURS[1])):
        for operation, marker in markers.items():
            chosen = [m for m in points if m.cell.server_pool == pool and m.cell.operation == operation]
            if not chosen:
                continue
            xs = [m.original.throughput_mibps for m in chosen]
            ys = [m.cell.throughput for m in chosen]
            axes.scatter(xs, ys, marker=marker, color=colour, label=f"{operation}, {pool} pool", s=40)
    values = [v for m in points for v in (m.original.throughput_mibps or 0, m.cell.throughput or 0) if v > 0]
    low, high = min(values) / 1.5, max(values) * 1.5
    axes.plot([low, high], [low, high], color="grey", linestyle="--", label="same throughput")
    axes.set_xscale("log")
    axes.set_yscale("log")
    for axis in (axes.xaxis, axes.yaxis):
        _plain_log(axis)
    axes.set_xlim(low, high)
    axes.set_ylim(low, high)
    axes.set_xlabel("original lab: throughput per client (MiB/s, as published)")
    axes.set_ylabel("this run: throughput per client (MiB/s)")
    axes.set_title("This run beside the original lab, cells both have\n(above the line: faster here)", fontsize=12)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    return _save(figure, path)


SHADES = {"better": "#2ca02c", "worse": "#d62728", "noise": "#b0b0b0", "same": "#b0b0b0"}


def differences(
    labels: Sequence[str], changes: Mapping[str, Sequence[tuple[float | None, str]]], path: Path, title: str
) -> Path:
    """Horizontal bars: the change (%) of each metric, one row per matched cell.

    Each bar is coloured by what it means for that metric (``SHADES``):
    green better (faster, more throughput), red worse, grey within the runs'
    noise; the legend says so.
    """
    height = max(3.0, 0.28 * len(labels) + 1.9)
    figure = Figure(figsize=(6.0 * len(changes) + 2.6, height), layout="constrained")
    grid = figure.subplots(1, len(changes), squeeze=False, sharey=True)[0]
    ys = list(range(len(labels)))
    used: set[str] = set()
    for axes, (metric, values) in zip(grid, changes.items(), strict=True):
        shown = [v if v is not None else 0.0 for v, _ in values]
        shades = [shade for _, shade in values]
        used.update(shade for v, shade in zip(shown, shades, strict=True) if v)
        axes.barh(ys, shown, color=[SHADES.get(shade, SHADES["same"]) for shade in shades])
        axes.axvline(0, color="black", linewidth=0.8)
        if not any(shown):
            axes.text(0.5, 0.5, "no difference", ha="center", va="center", transform=axes.transAxes)
            axes.set_xlim(-1, 1)
        axes.set_title(metric, fontsize=10)
        axes.set_xlabel("change, second run against first (%)")
        axes.grid(True, axis="x", alpha=0.3)
    grid[0].set_yticks(ys)
    grid[0].set_yticklabels(labels, fontsize=8)
    grid[0].invert_yaxis()
    legend = {
        "better": "better in the second run (less time, more throughput)",
        "worse": "worse in the second run (more time, less throughput)",
        "noise": "within noise: the runs' repeat ranges overlap",
    }
    handles = [Patch(color=SHADES[k], label=text) for k, text in legend.items() if k in used or k != "noise"]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8)
    figure.suptitle(title, fontsize=12)
    return _save(figure, path)
