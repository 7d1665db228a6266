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
from orchestrator.experiments.tcp.rows import (
    CLIENT_OUTPUT,
    DETAILS,
    LAPORAN_COLUMNS,
    LAPORAN_REPEAT_COLUMNS,
    laporan_fields,
    laporan_tables,
    summary_tables,
    write_laporan,
)
from orchestrator.experiments.udp.rows import COURSE_SECONDS, render_udp_table
from orchestrator.report import charts, insights
from orchestrator.report.load import RunData, load_run
from orchestrator.report.manifest import iso_time, manifest_lines
from orchestrator.report.model import Cell
from orchestrator.report.original import DEFECTS, GENERAL_NOTES, Match, load_original, match_original
from orchestrator.report.pdf import print_pdf
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
from orchestrator.store import RunFolder

CHART_DIR = "charts"
REPEATS_NOTE = "With repeats, each figure is the mean ± standard deviation over the repeats."
SUMMARY_CAPTIONS = {
    "Course columns": (
        "The course report's columns. Time per client: the mean over the clients that succeeded. Throughput per "
        "client: the volume divided by that mean time, so the two columns always agree. Server ok/failed come from "
        "the server's own records, not from the clients."
    ),
    DETAILS: (
        "p50/p95/max: percentiles of the successful clients' times. Mean of client rates: the average of each "
        "client's own volume / time; it exceeds throughput per client whenever the clients' times differ (e.g. "
        "queued behind busy workers), so it is not the course's figure. Aggregate: all bytes moved / the cell's "
        "wall time. CPU and memory: the containers, from docker stats while the cell ran (mean CPU in % of one "
        "core, 200 % = two cores; peak memory without the page cache; '-': the cell ended before the first "
        "sample, about one second). Peak RSS: the largest server process and client process."
    ),
}


def _dash(value: object) -> object:
    return "-" if value is None else value


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _course_seconds() -> dict[str, float]:
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
    blocks: list[Block] = [Paragraph(text), *server_facts(state.get("server"))]
    if state.get("status") not in (None, "finished"):
        blocks.append(
            Paragraph(
                f"This run is {state.get('status')}: the report covers only the cells that finished. "
                f"Continue it with: python orchestrate.py --resume {run.run_id}",
                note=True,
            )
        )
    return blocks


def server_facts(server: Mapping[str, object] | None) -> list[Block]:
    """Whose server the TCP cells measured, and what could not be measured of a submission's."""
    if not server:
        return []
    workers = server.get("workers")
    fixed = (
        f" Its worker count is not a parameter: every cell ran with its {workers} workers, whatever the matrix says."
        if workers
        else ""
    )
    return [
        Paragraph(
            f"Server under test: the submission {server.get('name')} ({server.get('protocol')} protocol, pool modes "
            f"{', '.join(map(str, server.get('pools') or []))}), standing in for alpine-1, measured by the lab's "
            f"own stress client.{fixed}"
        ),
        Paragraph(
            "A submission keeps no outcome log the lab can read, so its side is measured from outside: after each "
            "upload cell every client's stored file is hashed inside alpine-1 (Server ok/failed counts the intact "
            "ones), and the server processes' peak RSS is read from /proc. Not measured for this server: the "
            "server's side of downloads (Server ok/failed shows '-'), and its own time per request.",
            note=True,
        ),
    ]


def client_outputs(run: RunData, lines: int = 6) -> list[Block]:
    """With --client: beside the server's records, what the student's client printed in each cell (its end)."""
    client = run.state.get("client")
    if not client:
        return []
    blocks: list[Block] = [
        Heading(3, f"What the client {client.get('name')} printed"),
        Paragraph(
            "The lab's server's outcome log is the truth of what arrived intact and when (the tables above come "
            "from it); here is what the student's own client said, the last lines of each cell."
        ),
    ]
    for cell in run.cells:
        for cell_id in cell.cell_ids:
            path = run.path / "cells" / cell_id / CLIENT_OUTPUT
            text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else "(no output kept)"
            tail = "\n".join(text.rstrip().splitlines()[-lines:]) or "(it printed nothing)"
            blocks.append(Pre(f"cell {cell_id}:\n{tail}"))
    return blocks


def scaling_table(series: Sequence[insights.Scaling]) -> Table:
    fitted = any(s.slope is not None for s in series)
    rows = []
    for s in series:
        row = [
            s.name,
            " → ".join(str(c) for c in s.clients),
            " → ".join(f"{t:.3f}" for t in s.times),
            insights.times(s.growth),
            insights.times(s.clients_ratio),
        ]
        rows.append(row + ([_num(s.slope, 4), _num(s.r2, 3)] if fitted else []))
    headers = ["Series", "Clients", "Time per client (s)", "Time ratio", "Clients ratio"]
    workers = series[0].workers if series else 0
    caption = f"Mean time per client against the number of clients with {workers} server worker(s)"
    if fitted:
        headers += ["s per extra client", "R²"]
        caption += "; least-squares line ('-': a series with fewer than three client counts has no line)."
    else:
        counts = sorted({c for s in series for c in s.clients})
        caption += (
            f". No least-squares line (seconds per extra client, R²): that needs three or more client counts, and "
            f"this run has {len(counts)} ({', '.join(map(str, counts))}); the full matrix has 1, 5 and 50."
        )
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
    rows = [[c.number, c.label, c.clients_failed, _dash(c.server_failed), _causes(c, run)] for c in failing]
    return simple_table(["No", "Cell", "Clients failed", "Server failed", "Causes"], rows)


NO_CPU_SAMPLE = (
    "No CPU figure: the run was made before the lab read each container's CPU counter at the start and end of "
    "every cell, or the counters could not be read (summary.csv's cpu_problems column says why)."
)


def resource_notes(cells: Sequence[Cell]) -> list[Block]:
    """Why CPU figures are missing, when they all are (the figures themselves are in the summary)."""
    if any(c.server_cpu is not None or c.client_cpu is not None for c in cells):
        return []
    return [Paragraph(NO_CPU_SAMPLE, note=True)]


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
            render_udp_table(rows_source)  # fails early if the columns changed

            return Table(lambda fmt: render_udp_table(rows_source, tablefmt=fmt))
        except (KeyError, ValueError, TypeError):
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


def _figure(found: Path | None, title: str, caption: str = "", missing: str = "") -> list[Block]:
    """The chart, or where it was not drawn for want of data, ``missing``: a sentence that says why."""
    if found:
        return [Figure(found.name, title, caption)]
    return [Paragraph(f"No chart “{title}”: {missing}", note=True)] if missing else []


def summary_blocks(run: RunData) -> list[Block]:
    """The summary: the course's columns, then the spread of the clients' times and the aggregate figures."""
    titles = [title for title, _ in summary_tables(run.summary)]
    repeats = any(c.repeats > 1 for c in run.cells)
    blocks: list[Block] = []
    for index, title in enumerate(titles):
        caption = SUMMARY_CAPTIONS.get(title, "") + (" " + REPEATS_NOTE if repeats else "")

        def render(fmt: str, index: int = index) -> str:
            return summary_tables(run.summary, fmt)[index][1]

        blocks.append(Table(render, caption))
    return blocks


def report_blocks(run: RunData, chart_dir: Path, matches: Sequence[Match]) -> list[Block]:
    """Draw the charts into ``chart_dir`` and return the report's blocks."""
    cells = run.cells
    blocks: list[Block] = [Heading(1, f"Run {run.run_id}"), *run_facts(run), *insight_section(run, matches)]
    if cells:
        per_client = charts.metric_grid(
            cells,
            "throughput",
            chart_dir / "throughput-per-client.png",
            "Throughput per client (volume / mean time) against concurrent clients",
            "throughput per client (MiB/s)",
        )
        aggregate = charts.metric_grid(
            cells,
            "aggregate",
            chart_dir / "aggregate-throughput.png",
            "Aggregate throughput of each cell (all bytes / wall time)",
            "aggregate throughput (MiB/s)",
        )
        distribution = charts.time_distribution(cells, run.clients, chart_dir / "time-per-client.png")
        lines = charts.timelines(cells, run.clients, run.server, chart_dir)
        blocks += [Heading(2, "TCP file server"), Heading(3, "Summary")]
        blocks += summary_blocks(run)
        blocks.append(Heading(3, "Charts"))
        spread = " Bars: lowest to highest over the repeats." if any(c.repeats > 1 for c in cells) else ""
        nothing = "no transfer succeeded in any cell."
        blocks += _figure(per_client, "Throughput per client", "One line per server worker count." + spread, nothing)
        blocks += _figure(aggregate, "Aggregate throughput", spread.strip(), nothing)
        blocks += _figure(distribution, "Time per client, distribution", "", nothing)
        most = max(c.clients for c in cells)
        for path in lines:
            blocks += _figure(
                path,
                path.stem,
                f"The {most}-client cells: grey is time queued before a server worker took the connection.",
            )
        blocks += [Heading(3, "Failures"), failures_table(run)]
        blocks += client_outputs(run)
        blocks += [Heading(3, "Resources"), *resource_notes(cells)]
        blocks += _figure(charts.resources(cells, chart_dir / "resources.png"), "Resources per cell")
        comparison = charts.original_comparison(matches, chart_dir / "original-comparison.png")
        blocks += original_section(matches, comparison.name if comparison else None)
    if run.has_udp:
        blocks += [Heading(2, "UDP: one sender, two receivers"), udp_table(run)]
        course = _course_seconds()
        none = "no receiver reported a figure."
        udp_time = charts.udp_time(run.udp_summary, chart_dir / "udp-time.png", course)
        blocks += _figure(udp_time, "UDP time per model", "", none)
        blocks += _figure(
            charts.udp_loss(run.udp_summary, chart_dir / "udp-loss.png"), "UDP loss per receiver", "", none
        )
        blocks += [Heading(3, "UDP failures"), udp_failures(run)]
    blocks.append(Heading(2, "Environment"))
    if run.manifest:
        blocks.append(simple_table(["What", "Value"], manifest_lines(run.manifest)))
    else:
        blocks.append(Paragraph("This run has no manifest.json (it was made before manifests were recorded)."))
    if run.matrix_text:
        blocks += [Heading(2, "Matrix"), Pre(run.matrix_text)]
    return blocks


def _write_page(folder: Path, stem: str, blocks: Sequence[Block], title: str, lang: str = "en") -> Path:
    """``<stem>.md`` and ``<stem>.html`` (charts embedded) in ``folder``; returns the HTML file."""
    chart_dir = folder / CHART_DIR
    images = {b.name: (chart_dir / b.name).read_bytes() for b in blocks if isinstance(b, Figure)}
    (folder / f"{stem}.md").write_text(to_markdown(blocks, CHART_DIR), encoding="utf-8")
    page = folder / f"{stem}.html"
    page.write_text(to_html(blocks, images, title, lang), encoding="utf-8")
    return page


# --- the course's own format, in Indonesian ---------------------------------------------------


def laporan_blocks(run: RunData, chart_dir: Path) -> list[Block]:
    """The Indonesian report: how each column is computed, then the course's tables per pool mode."""
    state = run.state
    tables = laporan_tables(run.summary)
    repeats = any(c.repeats > 1 for c in run.cells)
    blocks: list[Block] = [
        Heading(1, f"Laporan run {run.run_id}"),
        Paragraph(
            f"Matriks {state.get('matrix') or '-'}, {state.get('repeat', 1)} kali ulangan, dimulai "
            f"{iso_time(state.get('started')) or '-'}, selesai {iso_time(state.get('finished')) or '-'}. "
            f"{len(run.cells)} sel TCP. Tabel ini dibuat dari summary.csv run ini, tanpa menjalankan ulang."
        ),
        Heading(2, "Cara setiap kolom dihitung"),
    ]
    columns = {**LAPORAN_COLUMNS, **(LAPORAN_REPEAT_COLUMNS if repeats else {})}
    blocks.append(simple_table(["Kolom", "Cara menghitung"], list(columns.items())))
    blocks.append(
        Paragraph(
            "Hanya transfer yang sukses (berkas lengkap, SHA-256 cocok) yang masuk ke waktu dan throughput. "
            "Berkas laporan-*.csv memakai titik sebagai pemisah desimal dan satuan di judul kolom, sehingga "
            "setiap kolom angka bisa langsung dijadikan grafik di spreadsheet."
        )
    )
    for name, rows in tables.items():
        pool = name.removeprefix("laporan-").removesuffix(".csv")
        fields = laporan_fields(rows)
        body = [[row[f] for f in fields] for row in rows]
        blocks += [Heading(2, f"Server pool: {pool}"), simple_table(fields, body, f"Berkas: {name}")]
    for chart, title in (("throughput-per-client.png", "Throughput per client"),
                         ("time-per-client.png", "Sebaran waktu per client")):  # fmt: skip
        if (chart_dir / chart).is_file():
            blocks.append(Figure(chart, title))
    blocks.append(Paragraph("Grafik lain, kegagalan, sumber daya dan lingkungan: lihat report.html (bahasa Inggris)."))
    return blocks


def build_report(folder: Path | RunFolder, lang: str = "en", pdf: bool = False) -> Path:
    """Write ``report.md``, ``report.html`` and ``charts/*.png`` into the run folder ``folder``.

    ``lang="id"`` also writes the course's ``laporan-*.csv`` files and the
    Indonesian ``laporan.md``/``laporan.html``; ``pdf`` prints each page to
    PDF beside it (``report.pdf``, ``laporan.pdf``). Returns the path of
    ``report.html``. Raises ``ReportError`` (a LabError) with a clear message
    if the folder is not a run or its files are damaged, ``PdfError`` if no
    PDF could be printed.
    """
    folder = folder.path if isinstance(folder, RunFolder) else Path(folder)
    run = load_run(folder)
    matches = match_original(run.cells, load_original()) if run.cells else []
    chart_dir = folder / CHART_DIR
    if chart_dir.is_dir():
        shutil.rmtree(chart_dir)  # charts of an earlier report must not linger
    pages = [_write_page(folder, "report", report_blocks(run, chart_dir, matches), f"progjar-lab run {run.run_id}")]
    if lang == "id" and run.summary:
        write_laporan(folder, run.summary)
        blocks = laporan_blocks(run, chart_dir)
        pages.append(_write_page(folder, "laporan", blocks, f"progjar-lab laporan {run.run_id}", "id"))
    if pdf:
        for page in pages:
            print_pdf(page, page.with_suffix(".pdf"))
    return pages[0]
