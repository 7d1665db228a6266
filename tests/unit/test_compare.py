"""Comparing two runs cell by cell (pure figures, plus the files write_comparison makes)."""

from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.image import imread

from orchestrator.report.compare import compare_cells, compare_runs, comparison_blocks, write_comparison
from orchestrator.report.load import load_run
from orchestrator.report.model import Cell
from orchestrator.report.render import to_markdown, to_text
from orchestrator.rows import read_raw as read_csv

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


def noisy(number, time, low, high, repeats=2):
    """A cell whose time per client over its repeats ran from ``low`` to ``high``."""
    from orchestrator.rows import Spread

    spread = {"time_mean": Spread(time, 0.0, low, high)} if repeats > 1 else {}
    return Cell(number, "upload", MIB, 5, number, "thread", repeats=repeats, time_mean=time, spread=spread)


def test_overlapping_repeat_ranges_are_within_noise_and_others_are_not():
    a = [noisy(1, 1.0, 0.8, 1.2), noisy(2, 1.0, 0.9, 1.1)]
    b = [noisy(1, 1.1, 1.0, 1.3), noisy(2, 2.0, 1.8, 2.2)]
    diffs, *_ = compare_cells(a, b)
    first, second = [d for d in diffs if d.metric == "time_mean"]
    assert first.within_noise is True
    assert second.within_noise is False and second.verdict == "worse"  # twice the time is worse
    comparison = compare_runs_of(a, b)
    text = to_markdown(comparison_blocks(comparison))
    assert "+10.0% within noise" in text and "+100.0% worse" in text
    assert "1 of 2 differing figures are within noise" in text


def test_without_repeats_the_comparison_says_noise_is_unknown(tmp_path):
    a = [noisy(1, 1.0, 1.0, 1.0, repeats=1)]
    b = [noisy(1, 0.5, 0.5, 0.5, repeats=1)]
    comparison = compare_runs_of(a, b)
    (time,) = [d for d in comparison.tcp if d.metric == "time_mean"]
    assert time.within_noise is None and time.verdict == "better"  # half the time is better
    text = to_markdown(comparison_blocks(comparison))
    assert "cannot separate run-to-run noise from an effect" in text and "--repeat 3" in text
    write_comparison(comparison, tmp_path)
    (row,) = [r for r in read_csv(tmp_path / "compare.csv") if r["metric"] == "time_mean"]
    assert (row["verdict"], row["within_noise"]) == ("better", "")


def test_better_and_worse_follow_each_metric_direction():
    from orchestrator.report.compare import Difference

    assert Difference("1", "1", "c", "throughput", 10.0, 12.0).verdict == "better"
    assert Difference("1", "1", "c", "time_mean", 1.0, 1.2).verdict == "worse"
    assert Difference("1", "1", "c", "clients_failed", 0.0, 2.0).verdict == "worse"
    assert Difference("1", "1", "c", "aggregate", 5.0, 5.0).verdict == "same"


def test_compare_chart_colours_mean_better_worse_and_noise():
    from orchestrator.report.charts import SHADES

    assert SHADES["better"] != SHADES["worse"] and SHADES["noise"] not in (SHADES["better"], SHADES["worse"])


def test_terminal_text_has_no_markdown_escapes(run):
    process = [replace(c, server_pool="process") for c in run.cells if c.server_pool == "thread"]
    thread = [c for c in run.cells if c.server_pool == "thread"]
    comparison = compare_runs_of(thread, process)
    text = to_text(comparison_blocks(comparison))
    assert "server_pool (thread in a, process in b)" in text
    assert "\\_" not in text and "\\*" not in text


def compare_runs_of(a, b):
    from orchestrator.report.compare import Comparison

    diffs, ignored, only_a, only_b = compare_cells(a, b)
    return Comparison("a", "b", ignored, diffs, [], only_a, only_b)


def test_a_count_one_run_could_not_measure_is_no_figure_not_zero():
    """A submission's server side of a download is not measured: compared, it is '-', never 0."""
    lab = [Cell(1, "download", MIB, 5, 1, "thread", throughput=10.0, server_ok=5, server_failed=0)]
    theirs = [Cell(1, "download", MIB, 5, 1, "thread", throughput=12.0, server_ok=None, server_failed=None)]
    diffs, *_ = compare_cells(lab, theirs)
    (failed,) = [d for d in diffs if d.metric == "server_failed"]
    assert (failed.a, failed.b, failed.difference) == (0.0, None, None)
