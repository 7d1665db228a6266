"""The original lab's published figures (data/original-figures.csv) and matching a run's cells to them."""

from pathlib import Path

import pytest

from orchestrator.report.model import Cell, ReportError
from orchestrator.report.original import DEFECTS, load_original, match_original, parse_original

MIB = 2**20
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def figures():
    return load_original()


def find(figures, pool, op, mib, clients, workers):
    (hit,) = [
        f
        for f in figures
        if (f.server_pool, f.operation, f.nominal_mib, f.clients, f.workers) == (pool, op, mib, clients, workers)
    ]
    return hit


def test_both_tables_are_transcribed(figures):
    assert len([f for f in figures if f.server_pool == "thread"]) == 54  # 51 published rows + 3 lost cells
    assert len([f for f in figures if f.server_pool == "process"]) == 51
    keys = [(f.server_pool, f.operation, f.nominal_mib, f.clients, f.workers) for f in figures]
    assert len(keys) == len(set(keys)), "a cell is listed twice"
    assert {code for f in figures for code in f.defects} <= set(DEFECTS)


def test_published_figures_and_units(figures):
    first = find(figures, "thread", "upload", 10, 1, 1)
    assert (first.row, first.time_s, first.published_volume) == (1, 0.627, "13.33MB")
    assert first.throughput_mibps == pytest.approx(21772.08 / 1024)
    download = find(figures, "process", "download", 50, 50, 1)
    assert (download.row, download.clients_ok, download.clients_failed) == (33, 38, 12)


def test_every_clean_row_is_self_consistent(figures):
    """time x throughput = the 4/3-size file in every row without failures: the transcription is right."""
    clean = [f for f in figures if f.measured and "F" not in f.defects]
    assert len(clean) > 70
    for f in clean:
        assert f.consistent, f"{f.server_pool} row {f.row}: {f.time_s} s x {f.throughput_mibps:.2f} MiB/s"


def test_known_defects_are_marked(figures):
    assert find(figures, "process", "upload", 100, 50, 5).all_defects == ("T", "F")
    assert find(figures, "thread", "upload", 100, 50, 1).all_defects == ("M",)
    assert all("Z" in f.defects for f in figures if f.operation == "download" and f.nominal_mib == 100)
    assert "I" in find(figures, "thread", "upload", 50, 50, 1).all_defects  # means of mixed successes and failures
    assert not find(figures, "thread", "upload", 10, 1, 1).all_defects


def test_matching_cells(figures):
    cells = [
        Cell(1, "upload", 10 * MIB, 1, 1, "thread", throughput=42.52, time_mean=0.3),
        Cell(2, "download", 100 * MIB, 5, 1, "thread", throughput=100.0),
        Cell(3, "upload", 100 * MIB, 50, 5, "thread", throughput=2.0),
        Cell(4, "upload", 3 * MIB, 1, 1, "thread", throughput=99.0),  # not in the original
        Cell(5, "upload", 10 * MIB, 1, 1, "thread", protocol="json", throughput=9.0),
    ]
    matches = match_original(cells, figures)
    assert [m.cell.number for m in matches] == [1, 2, 3]
    assert matches[0].throughput_ratio == pytest.approx(2.0, rel=1e-3)
    assert matches[1].throughput_ratio is None  # the original's figure is a partial file (Z)
    assert matches[2].throughput_ratio is None  # the original lost this cell (M)


def test_damaged_data_file_is_a_clear_error():
    header = "table,row,operation,published_volume,nominal_mib,clients,server_workers,time_s,throughput_kb_s"
    with pytest.raises(ReportError, match="not a number"):
        parse_original(["# note", header + ",clients_ok,clients_failed,defects", "thread,1,upload,x,ten,1,1,,,,,"])
    with pytest.raises(ReportError, match="missing"):
        parse_original([header, "thread,1,upload,x,10,1,1,1,1"])


def test_the_full_matrix_meets_every_published_cell(figures):
    """A run of matrices/full.yaml has the original's figures beside its own in the report."""
    from orchestrator.experiments.registry import load_matrix
    from orchestrator.report.build import original_section
    from orchestrator.report.render import to_markdown

    full = load_matrix("full", ROOT / "matrices")
    cells = [Cell(c.number, c.op, c.volume, c.clients, c.server_workers, c.server_pool, throughput=50.0, time_mean=1.0,
                  clients_ok=c.clients, server_ok=c.clients) for c in full.cells("tcp")]  # fmt: skip
    matches = match_original(cells, figures)
    assert len(matches) == len(figures) == 105  # all but the 100MB downloads with 50 workers the process table lacks
    text = to_markdown(original_section(matches, None))
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 105
    assert "| thread 1 " in text and "T F" in text and "M: missing from the original" in text
