"""build_report on a small real run folder: files out, charts drawn, HTML self-contained. No Docker."""

import re
import shutil
from pathlib import Path

import pytest
from matplotlib.image import imread

from orchestrator.report import ReportError, build_report
from orchestrator.report.load import find_run, load_run

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "run-small"
IMG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture
def run(tmp_path) -> Path:
    folder = tmp_path / "results" / "run-small"
    shutil.copytree(FIXTURE, folder)
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The fixture run with its report built once, for the tests that only read it."""
    folder = tmp_path_factory.mktemp("results") / "run-small"
    shutil.copytree(FIXTURE, folder)
    build_report(folder)
    return folder


def assert_png_drawn(path: Path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    pixels = imread(path)
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300, f"{path.name} is tiny"
    assert pixels[..., :3].std() > 0.05, f"{path.name} is blank"


def test_report_files_and_charts(built):
    run = built
    assert (run / "report.html").is_file() and (run / "report.md").is_file()
    charts = sorted(p.name for p in (run / "charts").glob("*.png"))
    for name in ("throughput-per-client.png", "aggregate-throughput.png", "time-per-client.png", "resources.png",
                 "udp-time.png", "udp-loss.png", "timeline-upload-8MiB.png", "timeline-download-1MiB.png"):  # fmt: skip
        assert name in charts
    for chart in charts:
        assert_png_drawn(run / "charts" / chart)


def test_html_has_tables_and_embedded_images(built):
    run = built
    page = (run / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<table") >= 5  # scaling, summary, failures, resources, UDP, environment
    charts = list((run / "charts").glob("*.png"))
    images = IMG.findall(page)
    assert len(images) == len(charts)
    assert all(len(data) > 1000 for data in images)
    # self-contained: nothing fetched from elsewhere
    assert not re.search(r'(src|href)="(https?:|//|charts/)', page)
    assert "<script" not in page and "<link" not in page
    for text in ("What this shows", "TCP file server", "Failures", "Resources", "UDP", "Environment", "Matrix"):
        assert f">{text}" in page


def test_markdown_links_the_charts(built):
    run = built
    text = (run / "report.md").read_text()
    links = re.findall(r"!\[[^]]*\]\((charts/[^)]+)\)", text)
    assert links and all((run / link).is_file() for link in links)
    assert "| No " in text  # the summary table in github format


def test_failures_are_listed_with_their_causes(built):
    text = (built / "report.html").read_text()
    assert "timeout after 0.25s" in text
    assert "connection closed after" in text  # the server's side of the same failures


def test_claims_come_from_this_run(built):
    text = (built / "report.md").read_text()
    section = text.split("## What this shows")[1].split("##")[0]
    assert "With 1 server worker, mean time per client grows" in section
    assert "12 of 144 client transfers failed" in section  # the fixture's own counts
    assert "pool beats the" in section


def test_environment_from_the_manifest(built):
    page = (built / "report.html").read_text()
    assert "20.10.24" in page  # the engine that ran the fixture
    assert "Random seed" in page and "none (cells in matrix order)" in page


def test_no_manifest_and_no_udp_are_fine(run):
    for name in ("manifest.json", "udp.csv", "udp_summary.csv"):
        (run / name).unlink()
    (run / "charts").mkdir()
    stale = run / "charts" / "stale.png"  # left by an earlier report
    stale.write_bytes(b"old")
    page = build_report(run).read_text()
    assert "no manifest.json" in page
    assert "<h2>UDP" not in page and "<h3>UDP" not in page
    assert not (run / "charts" / "udp-time.png").exists()
    assert not stale.exists()


def test_udp_only_run(run):
    for name in ("summary.csv", "clients.csv", "server.csv"):
        (run / name).unlink()
    page = build_report(run).read_text()
    assert "UDP: one sender, two receivers" in page
    assert "TCP file server" not in page


def test_unknown_run_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="no run 'nope'"):
        find_run(tmp_path, "nope")
    with pytest.raises(ReportError, match="no run folder"):
        build_report(tmp_path / "nope")


def test_damaged_summary_is_a_clear_error(run):
    (run / "summary.csv").write_text("cell_id,number,operation\n001,one,upload\n")
    with pytest.raises(ReportError, match="missing"):
        load_run(run)
    header = (FIXTURE / "summary.csv").read_text().splitlines()[0]
    (run / "summary.csv").write_text(header + "\n" + "x," * 40 + "\n")
    with pytest.raises(ReportError, match="more fields than the header"):
        load_run(run)
    (run / "summary.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ReportError, match="cannot be read"):
        load_run(run)


def test_not_a_number_names_the_line_and_column(run):
    lines = (run / "summary.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",upload,", ",upload,", 1).replace(",1048576,", ",lots,", 1)
    (run / "summary.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(ReportError, match=r"line 4: column 'volume_bytes' holds 'lots'"):
        load_run(run)


def test_resources_chart_says_why_a_panel_is_empty_and_legend_colours_differ():
    from matplotlib.colors import to_hex

    from orchestrator.report.charts import resources_figure
    from orchestrator.report.model import Cell

    cells = [Cell(n, "upload", 2**20, 1, 1, "thread", server_memory=20.0 + n, client_memory=30.0) for n in (1, 2)]
    cpu_axes, memory_axes = resources_figure(cells).axes
    assert any("no CPU sample" in text.get_text() for text in cpu_axes.texts)
    assert cpu_axes.get_legend() is None  # no legend entries for bars that were not drawn
    colours = [to_hex(h.get_facecolor()) for h in memory_axes.get_legend().legend_handles]
    assert len(colours) == 2 and len(set(colours)) == 2


def test_scaling_table_explains_a_missing_fit():
    from orchestrator.report.build import scaling_table
    from orchestrator.report.insights import Scaling

    table = scaling_table([Scaling("upload 1MiB, thread pool", 1, (1, 5), (0.1, 0.4), None, None)])
    text = table.render("github")
    assert "R²" not in text and "s per extra client" not in text  # no all-'-' columns
    assert "three or more client counts" in table.caption and "(1, 5)" in table.caption


def test_a_chart_without_data_is_a_sentence():
    from orchestrator.report.build import _figure
    from orchestrator.report.render import Paragraph

    (block,) = _figure(None, "Throughput per client", missing="no transfer succeeded in any cell.")
    assert isinstance(block, Paragraph) and "no transfer succeeded" in block.text


def test_report_of_a_repeat_run_shows_the_spread(tmp_path):
    import csv

    folder = tmp_path / "run-small"
    shutil.copytree(FIXTURE, folder)
    with (folder / "summary.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    again = [{**r, "repeat": "2", "time_per_client_mean_s": str(float(r["time_per_client_mean_s"] or 1) * 1.5)}
             for r in rows]  # fmt: skip
    with (folder / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows + again)
    page = build_report(folder).read_text()
    assert " ± " in page and "mean ± standard deviation over the repeats" in page
    assert "lowest to highest over the repeats" in page
