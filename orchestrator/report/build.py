"""``build_report``: a run folder's CSV files and manifest in; report.md, report.html and charts/*.png out.

Nothing is rerun and Docker is not needed: everything comes from the files
stored in ``results/<run-id>/``. The report's sections are assembled here as
blocks (see ``render.py``); the figures are drawn by ``charts.py`` and the
"what this shows" claims computed by ``insights.py``.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from app.sizes import format_size
from orchestrator.manifest import iso_time, manifest_lines
from orchestrator.report import charts, insights
from orchestrator.report.load import RunData, load_run
from orchestrator.report.model import Cell
from orchestrator.report.original import DEFECTS, GENERAL_NOTES, Match, load_original, match_original
from orchestrator.report.render import (
    Block,
    Bullets,
    Figure,
    Heading,
    Paragraph,
    Pre,
    Table,
    simple_table,
    to_html,
    to_markdown,
)
from orchestrator.results import RunFolder
from orchestrator.summary import render_table

CHART_DIR = "charts"
SUMMARY_CAPTION = (
    "Time per client: mean (p50/p95/max) over the clients that succeeded; throughput per client: their mean; "
    "aggregate: all bytes moved / the cell's wall time. Server ok/failed come from the server's own records. "
    "Several repeats of a cell: mean ± standard deviation."
)


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _course_seconds() -> dict[str, float]:
    try:
        from orchestrator.udp_summary import COURSE_SECONDS
    except ImportError:
        return {}
    return dict(COURSE_SECONDS)


# --- sections ---------------------------------------------------------------------------


def run_facts(run: RunData) -> list[Block]:
    state = run.state
    matrix = state.get("matrix") or "unknown"
    seed = state.get("shuffle_seed")
    order = f", shuffled with seed {seed}" if seed is not None else ""
    udp_cells = len({row.get("cell_id") for row in run.udp}) if run.udp else 0
    text = (
        f"Matrix {matrix}, experiment {state.get('experiment', 'all')}, {state.get('repeat', 1)} repeat(s){order}. "
        f"Started {iso_time(state.get('started')) or 'unknown'}, finished {iso_time(state.get('finished')) or '-'}; "
        f"status {state.get('status', 'unknown')}. {len(run.cells)} TCP cells, {udp_cells} UDP cells."
    )
    blocks: list[Block] = [Paragraph(text)]
    if state.get("status") not in (None, "finished"):
        blocks.append(
            Paragraph(
                f"This run is {state.get('status')}: the report covers only the cells that finished. "
                f"Continue it with: python orchestrate.py --resume {run.run_id}",
                note=True,
            )
        )
    return blocks


def scaling_table(series: Sequence[insights.Scaling]) -> Table:
    rows = [
        [
            s.name,
            " → ".join(str(c) for c in s.clients),
            " → ".join(f"{t:.3f}" for t in s.times),
            insights.times(s.growth),
            insights.times(s.clients_ratio),
            _num(s.slope, 4),
            _num(s.r2, 3),
        ]
        for s in series
    ]
    headers = ["Series", "Clients", "Time per client (s)", "Time ratio", "Clients ratio", "s per extra client", "R²"]
    workers = series[0].workers if series else 0
    caption = f"Mean time per client against the number of clients with {workers} server worker(s); least-squares line."
    return simple_table(headers, rows, caption)


def insight_section(run: RunData, matches: Sequence[Match]) -> list[Block]:
    claims = insights.tcp_claims(run.cells)
    ratios = [r for m in matches if (r := m.throughput_ratio) is not None]
    excluded = sum(1 for m in matches if not m.original.measured)
    claims += insights.original_claims(ratios, excluded)
    claims += insights.udp_claims(run.udp_summary, _course_seconds())
    blocks: list[Block] = [Heading(2, "What this shows")]
    blocks.append(Bullets(tuple(claims)) if claims else Paragraph("There are no figures to draw a conclusion from."))
    series = insights.scaling_series(run.cells)
    if series:
        blocks.append(scaling_table(series))
    return blocks


def _causes(cell: Cell, run: RunData) -> str:
    """Every distinct failure cause of a cell, counted, from the client and server rows."""
    ids = set(cell.cell_ids)
    counts: Counter[str] = Counter()
    for row in run.clients:
        if row.get("cell_id") in ids and row.get("status") != "ok":
            counts[f"client: {row.get('error') or 'unknown error'}"] += 1
    for row in run.server:
        if row.get("cell_id") in ids and row.get("status") != "ok":
            counts[f"server: {row.get('error') or 'unknown error'}"] += 1
    if not counts:
        return "; ".join(cell.errors) or "-"
    return "; ".join(f"{n}x {text}" for text, n in counts.most_common())


def failures_table(run: RunData) -> Block:
    failing = [c for c in run.cells if c.failed]
    if not failing:
        return Paragraph("No transfer failed: every client and every server record says ok.")
    rows = [[c.number, c.label, c.clients_failed, c.server_failed, _causes(c, run)] for c in failing]
    return simple_table(["No", "Cell", "Clients failed", "Server failed", "Causes"], rows)


def resources_table(cells: Sequence[Cell]) -> Block:
    values = ("server_cpu", "client_cpu", "server_memory", "client_memory", "server_rss", "client_rss")
    if not any(getattr(c, v) is not None for c in cells for v in values):
        return Paragraph("No resource samples were recorded for this run.")
    rows = [[c.number, c.label, *(_num(getattr(c, v), 1) for v in values)] for c in cells]
    headers = [
        "No", "Cell", "Server CPU %", "Client CPU %", "Server memory peak MiB", "Client memory peak MiB",
        "Server process peak RSS MiB", "Client process peak RSS MiB",
    ]  # fmt: skip
    caption = (
        "Container figures from docker stats while the cell ran: mean CPU in % of one core (200 % = two cores), "
        "peak memory without the page cache. '-': no sample (cells shorter than a second) or not recorded."
    )
    return simple_table(headers, rows, caption)


def original_section(matches: Sequence[Match], chart: str | None) -> list[Block]:
    blocks: list[Block] = [Heading(3, "Beside the original lab's published figures")]
    if not matches:
        blocks.append(
            Paragraph(
                "None of this run's cells is in the original lab's tables (10/50/100 MiB, 1/5/50 clients, "
                "1/5/50 server workers, stream protocol); the full matrix has them all."
            )
        )
        return blocks
    blocks.append(
        Paragraph(
            "Source: the course report's two result tables (data/original-figures.csv, see data/README.md), "
            "throughput converted from KiB/s to MiB/s. Defect codes mark the original's known defects where they "
            "change what its figure means."
        )
    )
    rows = []
    for m in matches:
        c, o = m.cell, m.original
        ratio = m.throughput_ratio
        rows.append([
            c.number, c.operation, format_size(c.volume), c.server_pool, c.clients, c.workers,
            _num(o.time_s, 3), _num(c.time_mean, 3),
            _num(o.throughput_mibps, 2), _num(c.throughput, 2), insights.times(ratio) if ratio else "-",
            "-" if o.clients_ok is None else f"{o.clients_ok}/{o.clients_failed}",
            f"{c.clients_ok}/{c.clients_failed}",
            "-" if o.row is None else f"{o.server_pool} {o.row}", " ".join(o.all_defects) or "-",
        ])  # fmt: skip
    headers = [
        "No", "Operation", "Volume", "Server pool", "Clients", "Workers", "Time/client s: original", "this run",
        "Throughput/client MiB/s: original", "this run", "this/original", "Clients ok/failed: original", "this run",
        "Original table, row", "Defects",
    ]  # fmt: skip
    blocks.append(simple_table(headers, rows))
    codes = sorted({code for m in matches for code in m.original.all_defects})
    notes = [f"{code}: {DEFECTS[code]}" for code in codes if code in DEFECTS] + list(GENERAL_NOTES)
    blocks.append(Bullets(tuple(notes)))
    if chart:
        blocks.append(
            Figure(chart, "This run beside the original lab", "Cells whose original figure is a measurement only.")
        )
    return blocks


def udp_table(run: RunData) -> Table:
    rows_source: Sequence[Mapping[str, str]] = run.udp
    if rows_source:
        try:
            from orchestrator.udp_summary import render_udp_table

            render_udp_table(rows_source)  # fails early if the columns changed

            return Table(lambda fmt: render_udp_table(rows_source, tablefmt=fmt))
        except (ImportError, KeyError, ValueError, TypeError):
            pass
    headers = list(run.udp_summary[0]) if run.udp_summary else []
    return simple_table(headers, [[row.get(h, "") for h in headers] for row in run.udp_summary])


def udp_failures(run: RunData) -> Block:
    bad = [row for row in run.udp if row.get("intact") not in ("true", None)]
    if not run.udp:
        bad = [row for row in run.udp_summary if (row.get("failed") or "0") not in ("0", "")]
        rows = [[r.get("model"), r.get("payload"), r.get("receiver"), r.get("failed"), r.get("errors")] for r in bad]
        headers = ["Model", "Payload (B)", "Receiver", "Failed runs", "Errors"]
    else:
        rows = [
            [r.get("cell_id"), r.get("model"), r.get("payload"), r.get("receiver"), r.get("status"), r.get("error")]
            for r in bad
        ]
        headers = ["Cell", "Model", "Payload (B)", "Receiver", "Status", "Error"]
    if not rows:
        return Paragraph("Every receiver got the file intact.")
    return simple_table(headers, rows)


# --- the whole report ---------------------------------------------------------------------


def _figure(found: Path | None, title: str, caption: str = "") -> list[Block]:
    return [Figure(found.name, title, caption)] if found else []


def report_blocks(run: RunData, chart_dir: Path, matches: Sequence[Match]) -> list[Block]:
    """Draw the charts into ``chart_dir`` and return the report's blocks."""
    cells = run.cells
    blocks: list[Block] = [Heading(1, f"Run {run.run_id}"), *run_facts(run), *insight_section(run, matches)]
    if cells:
        per_client = charts.metric_grid(
            cells,
            lambda c: c.throughput,
            chart_dir / "throughput-per-client.png",
            "Throughput per client against concurrent clients (thread pool | process pool)",
            "throughput per client (MiB/s)",
        )
        aggregate = charts.metric_grid(
            cells,
            lambda c: c.aggregate,
            chart_dir / "aggregate-throughput.png",
            "Aggregate throughput of each cell (all bytes / wall time)",
            "aggregate throughput (MiB/s)",
        )
        distribution = charts.time_distribution(cells, run.clients, chart_dir / "time-per-client.png")
        lines = charts.timelines(cells, run.clients, run.server, chart_dir)
        blocks += [Heading(2, "TCP file server"), Heading(3, "Summary")]
        blocks.append(Table(lambda fmt: render_table(run.summary, tablefmt=fmt), SUMMARY_CAPTION))
        blocks.append(Heading(3, "Charts"))
        blocks += _figure(per_client, "Throughput per client", "One line per server worker count.")
        blocks += _figure(aggregate, "Aggregate throughput")
        blocks += _figure(distribution, "Time per client, distribution")
        most = max(c.clients for c in cells)
        for path in lines:
            blocks += _figure(
                path,
                path.stem,
                f"The {most}-client cells: grey is time queued before a server worker took the connection.",
            )
        blocks += [Heading(3, "Failures"), failures_table(run)]
        blocks += [Heading(3, "Resources"), resources_table(cells)]
        blocks += _figure(charts.resources(cells, chart_dir / "resources.png"), "Resources per cell")
        comparison = charts.original_comparison(matches, chart_dir / "original-comparison.png")
        blocks += original_section(matches, comparison.name if comparison else None)
    if run.has_udp:
        blocks += [Heading(2, "UDP: one sender, two receivers"), udp_table(run)]
        course = _course_seconds()
        blocks += _figure(charts.udp_time(run.udp_summary, chart_dir / "udp-time.png", course), "UDP time per model")
        blocks += _figure(charts.udp_loss(run.udp_summary, chart_dir / "udp-loss.png"), "UDP loss per receiver")
        blocks += [Heading(3, "UDP failures"), udp_failures(run)]
    blocks.append(Heading(2, "Environment"))
    if run.manifest:
        blocks.append(simple_table(["What", "Value"], manifest_lines(run.manifest)))
    else:
        blocks.append(Paragraph("This run has no manifest.json (it was made before manifests were recorded)."))
    if run.matrix_text:
        blocks += [Heading(2, "Matrix"), Pre(run.matrix_text)]
    return blocks


def build_report(folder: Path | RunFolder) -> Path:
    """Write ``report.md``, ``report.html`` and ``charts/*.png`` into the run folder ``folder``.

    Returns the path of ``report.html``. Raises ``ReportError`` (a LabError)
    with a clear message if the folder is not a run or its files are damaged.
    """
    folder = folder.path if isinstance(folder, RunFolder) else Path(folder)
    run = load_run(folder)
    matches = match_original(run.cells, load_original()) if run.cells else []
    chart_dir = folder / CHART_DIR
    if chart_dir.is_dir():
        shutil.rmtree(chart_dir)  # charts of an earlier report must not linger
    blocks = report_blocks(run, chart_dir, matches)
    images = {}
    for block in blocks:
        if isinstance(block, Figure):
            images[block.name] = (chart_dir / block.name).read_bytes()
    (folder / "report.md").write_text(to_markdown(blocks, CHART_DIR), encoding="utf-8")
    html_path = folder / "report.html"
    html_path.write_text(to_html(blocks, images, f"progjar-lab run {run.run_id}"), encoding="utf-8")
    return html_path
