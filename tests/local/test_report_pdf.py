"""report.pdf: headless Chromium prints the report on A4; pdftoppm and pdftotext read the pages back.

Needs Debian's ``chromium`` and ``poppler-utils`` (``pdftoppm``, ``pdftotext``, ``pdfinfo``); skipped without them.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from matplotlib.image import imread

from orchestrator.experiments.tcp.rows import SUMMARY, TABLES, TableColumn, merge_repeats
from orchestrator.report import build_report
from orchestrator.report.pdf import find_browser

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "run-small"
POPPLER = all(shutil.which(tool) for tool in ("pdftoppm", "pdftotext", "pdfinfo"))
A4_POINTS = (595, 842)
MAX_PAGES = 8

pytestmark = pytest.mark.skipif(
    find_browser() is None or not POPPLER,
    reason="needs chromium and poppler-utils (apt-get install chromium poppler-utils)",
)


def pages_text(pdf: Path) -> list[str]:
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return text.split("\f")[:-1]  # one form feed ends every page


def words(text: str) -> list[str]:
    return re.findall(r"[^\s]+", text)


@pytest.fixture(scope="module")
def printed(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("results") / "run-small"
    shutil.copytree(FIXTURE, folder)
    build_report(folder, pdf=True)
    return folder


def test_pdf_is_a4_and_short(printed):
    pdf = printed / "report.pdf"
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    pages = int(re.search(r"Pages:\s+(\d+)", info).group(1))
    width, height = map(float, re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info).groups())
    assert (round(width), round(height)) == A4_POINTS
    assert 1 < pages <= MAX_PAGES, f"{pages} pages"


def test_every_summary_column_header_is_on_the_page(printed):
    pages = pages_text(printed / "report.pdf")
    for title, columns in TABLES.items():
        shown = [c for c in columns if c.has_data(_rows())]
        anchor = shown[-1]  # the last column: the first to be cut off by a page too narrow
        found = [page for page in pages if set(words(anchor.header)) <= set(words(page))]
        assert found, f"{title}: header {anchor.header!r} is on no page"
        page = set(words(found[0]))
        missing = [c.header for c in shown if not set(words(c.header)) <= page]
        assert not missing, f"{title}: headers {missing} are not on the page of {anchor.header!r}"


def test_page_images_show_tables_and_charts(printed, tmp_path):
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(printed / "report.pdf"), str(tmp_path / "page")], check=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert images
    for image in images:
        pixels = imread(image)[..., :3]
        assert (pixels < 0.9).any(axis=2).mean() > 0.01, f"{image.name} is blank"
    coloured = [(imread(i)[..., :3].max(axis=2) - imread(i)[..., :3].min(axis=2) > 0.35).mean() for i in images]
    assert sum(share > 0.002 for share in coloured) >= 2, "no page shows a chart"


def test_charts_are_never_cut_by_a_page_break(printed):
    html = (printed / "report.html").read_text()
    print_css = html[html.index("@media print") :]
    assert re.search(r"figure \{[^}]*break-inside: avoid", print_css)
    assert re.search(r"tr \{[^}]*break-inside: avoid", print_css)


def test_laporan_pdf_with_lang_id(tmp_path):
    folder = tmp_path / "run-small"
    shutil.copytree(FIXTURE, folder)
    build_report(folder, lang="id", pdf=True)
    text = "\n".join(pages_text(folder / "laporan.pdf"))
    for header in ("Waktu total per client (s)", "Throughput per client (MiB/s)", "Cara setiap kolom dihitung"):
        assert set(words(header)) <= set(words(text))


def _rows():
    return merge_repeats(SUMMARY.read(FIXTURE))


def test_columns_are_data_driven():
    # a column no row has a figure for is left out; a text column always shows
    assert not TableColumn("x", "no_such_column").has_data(_rows())
    assert TableColumn("x", show=lambda s: "y").has_data(_rows())
