"""``orchestrate.py report``, ``compare`` and ``list`` on a stored run folder: no Docker, no lab."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "run-small"
NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # proves none of these needs the engine


def orchestrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "orchestrate.py", *args],
        cwd=ROOT,
        env={**os.environ, **NO_DOCKER},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def results(tmp_path) -> Path:
    shutil.copytree(FIXTURE, tmp_path / "run-small")
    return tmp_path


def test_report_regenerates_from_the_stored_csv(results):
    done = orchestrate("report", "run-small", "--results", str(results))
    assert done.returncode == 0, done.stderr
    html = results / "run-small" / "report.html"
    assert done.stdout.strip() == f"report: {html}"
    assert html.is_file() and (results / "run-small" / "report.md").is_file()
    assert len(list((results / "run-small" / "charts").glob("*.png"))) >= 8


def test_compare_a_run_with_itself(results):
    shutil.copytree(results / "run-small", results / "run-copy")
    done = orchestrate("compare", "run-small", "run-copy", "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert "No differences: every matched figure is the same." in done.stdout
    out = results / "run-small" / "compare-run-copy"
    assert {p.name for p in out.iterdir()} == {"compare.md", "compare.csv", "compare.png"}


def test_list_shows_runs_with_matrix_date_and_status(results):
    shutil.copytree(results / "run-small", results / "older")
    (results / "not-a-run").mkdir()
    done = orchestrate("list", "--results", str(results))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["Run", "id", "Matrix", "Started"]
    _, matrix, started, status, tcp, udp, failed, report = next(
        line for line in lines if line.startswith("run-small")
    ).split()
    assert (matrix, status, tcp, udp, report) == ("fixture.yaml", "finished", "32", "8", "no")
    assert started.startswith("2026-11-21T")
    assert failed == "24"  # 12 client transfers and the server's 12 records of them
    assert not any(line.startswith("not-a-run") for line in lines)


def test_list_with_no_results_folder(tmp_path):
    done = orchestrate("list", "--results", str(tmp_path / "none"))
    assert done.returncode == 0 and "no runs in" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "no-such-run"], "no run 'no-such-run'"),
        (["report"], "report needs a run id"),
        (["compare", "run-small"], "compare needs two run ids"),
        (["compare", "run-small", "no-such-run"], "no run 'no-such-run'"),
    ],
)
def test_bad_usage_is_a_clear_error(results, args, message):
    done = orchestrate(*args, "--results", str(results))
    assert done.returncode == 2
    assert f"error: {message}" in done.stderr
    assert "Traceback" not in done.stderr


def test_damaged_csv_is_a_clear_error(results):
    (results / "run-small" / "summary.csv").write_text("number,operation\nseven,upload\n")
    done = orchestrate("report", "run-small", "--results", str(results))
    assert done.returncode == 2
    assert "error:" in done.stderr and "summary.csv" in done.stderr
    assert "Traceback" not in done.stderr
    listed = orchestrate("list", "--results", str(results))
    assert listed.returncode == 0 and "run-small" in listed.stdout


def test_lang_id_on_a_run_made_without_it_writes_numeric_laporan_files(results):
    folder = results / "run-small"
    assert not list(folder.glob("laporan-*.csv"))  # the run was made without --lang id
    done = orchestrate("report", "run-small", "--lang", "id", "--results", str(results))
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in folder.glob("laporan-*.csv"))
    assert files == ["laporan-process.csv", "laporan-thread.csv"]
    assert "laporan.html" in done.stdout and (folder / "laporan.html").is_file()
    numeric = [
        "Nomor", "Volume (byte)", "Jumlah client worker pool", "Jumlah server worker pool",
        "Waktu total per client (s)", "Throughput per client (MiB/s)", "Jumlah worker client yang sukses",
        "Jumlah worker client yang gagal", "Jumlah worker server yang sukses", "Jumlah worker server yang gagal",
    ]  # fmt: skip
    with (folder / "laporan-thread.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 16
    for row in rows:
        figures = {name: float(row[name]) for name in numeric if row[name] != ""}  # a spreadsheet's plottable columns
        assert figures["Volume (byte)"] in (2**20, 8 * 2**20)
        assert row["Volume"] in ("1 MB", "8 MB")
        if "Waktu total per client (s)" in figures:
            volume_mib = figures["Volume (byte)"] / 2**20
            throughput = volume_mib / figures["Waktu total per client (s)"]
            assert figures["Throughput per client (MiB/s)"] == pytest.approx(throughput, rel=0.01)
    page = (folder / "laporan.html").read_text()
    assert '<html lang="id">' in page and "Cara setiap kolom dihitung" in page


def test_pdf_without_a_renderer_is_a_one_line_error(results, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(
        [sys.executable, "orchestrate.py", "report", "run-small", "--pdf", "--results", str(results)],
        cwd=ROOT,
        env={**os.environ, **NO_DOCKER, "PATH": str(empty)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: no PDF renderer: --pdf needs Chromium (Debian/Ubuntu: sudo apt-get install chromium)"
    ]
    assert not (results / "run-small" / "report.pdf").exists()


def test_compare_on_the_terminal_is_plain_text(results):
    shutil.copytree(results / "run-small", results / "run-copy")
    done = orchestrate("compare", "run-small", "run-copy", "--results", str(results))
    assert done.returncode == 0, done.stderr
    assert "\\_" not in done.stdout and "\\*" not in done.stdout
