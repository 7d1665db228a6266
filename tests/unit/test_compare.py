"""Comparing two runs cell by cell (pure figures, plus the files write_comparison makes)."""

from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.image import imread

from orchestrator.compare import compare_cells, compare_runs, comparison_blocks, write_comparison
from orchestrator.report.load import load_run
from orchestrator.report.model import Cell
from orchestrator.report.render import to_markdown
from orchestrator.results import read_csv

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "run-small"
MIB = 2**20


@pytest.fixture(scope="module")
def run():
    return load_run(FIXTURE)


def test_a_run_against_itself_has_zero_differences(run, tmp_path):
    comparison = compare_runs(run, run)
    assert comparison.identical
    assert len(comparison.tcp) == 5 * len(run.cells)  # three figures and two failure counts per cell
    assert all(d.difference in (0, None) for d in comparison.tcp)
    assert all(d.change_percent in (0, None) for d in [*comparison.tcp, *comparison.udp])
    assert comparison.udp and not comparison.only_a and not comparison.only_b
    text = to_markdown(comparison_blocks(comparison))
    assert "No differences" in text
    path = write_comparison(comparison, tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "compare.csv")
    assert rows and all(row["difference"] in ("0.0", "") for row in rows)
    assert path.name == "compare.md" and "compare.png" in path.read_text()
    assert imread(tmp_path / "out" / "compare.png")[..., :3].std() > 0.05


def test_differences_are_computed(run):
    faster = [replace(c, time_mean=c.time_mean / 2 if c.time_mean else None) for c in run.cells]
    diffs, ignored, only_a, only_b = compare_cells(run.cells, faster[1:])
    assert not ignored and only_a == ["upload 1MiB, thread pool, c1 w1"] and not only_b
    times = [d for d in diffs if d.metric == "time_mean" and d.a]
    assert times and all(d.change_percent == pytest.approx(-50.0) for d in times)


def test_thread_run_against_process_run_matches_ignoring_the_pool():
    thread = [Cell(1, "upload", MIB, 5, 1, "thread", throughput=10.0), Cell(2, "upload", MIB, 5, 5, "thread")]
    process = [Cell(1, "upload", MIB, 5, 1, "process", throughput=15.0), Cell(2, "upload", MIB, 5, 5, "process")]
    diffs, ignored, only_a, only_b = compare_cells(thread, process)
    assert ignored == {"server_pool": ("thread", "process")}
    assert not only_a and not only_b
    (throughput,) = [d for d in diffs if d.metric == "throughput" and d.a]
    assert throughput.cell == "upload 1MiB, c5 w1" and throughput.change_percent == pytest.approx(50.0)
