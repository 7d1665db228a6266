from dataclasses import replace

import pytest

from orchestrator.matrix import TcpCell
from orchestrator.results import read_csv, write_csv
from orchestrator.summary import (
    SEED_HEADERS_ID,
    SUMMARY_FIELDS,
    combine_repeats,
    describe_errors,
    percentile,
    render_table,
    seed_csv_tables,
    summarize_cell,
)

CELL = TcpCell(number=3, op="upload", volume=10 * 2**20, clients=3, server_workers=1, server_pool="thread")


def client(i, status="ok", seconds=1.0, start=100.0, error=""):
    row = {"client": str(i), "status": status, "seconds": str(seconds), "start": str(start),
           "end": str(start + seconds), "bytes": str(10 * 2**20), "error": error}  # fmt: skip
    if status == "ok":
        row["throughput_bps"] = str(10 * 2**20 / seconds)
    return row


def test_per_client_and_aggregate_figures_are_separate():
    rows = [client(1, seconds=1.0), client(2, seconds=2.0), client(3, status="error", error="timeout after 60s")]
    server = [{"status": "ok"}, {"status": "ok"}, {"status": "error", "error": "Checksum mismatch"}]
    s = summarize_cell(CELL, rows, server)
    assert s["time_per_client_mean_s"] == pytest.approx(1.5)
    assert s["throughput_per_client_mean_mibps"] == pytest.approx((10 + 5) / 2)
    assert s["aggregate_mibps"] == pytest.approx(20 / 2.0)  # 20 MiB moved in a 2 s window
    assert (s["clients_ok"], s["clients_failed"], s["server_ok"], s["server_failed"]) == (2, 1, 2, 1)
    assert "timeout after 60s" in s["errors"] and "server: Checksum mismatch" in s["errors"]


def test_cell_where_nothing_succeeded():
    s = summarize_cell(CELL, [client(1, status="error", error="connection error: refused")], [])
    assert s["time_per_client_mean_s"] is None and s["aggregate_mibps"] is None
    assert render_table([s]).count("-") > 0


def test_describe_errors_counts_causes():
    rows = [client(1, "error", error="a"), client(2, "error", error="a"), client(3, "error", error="b"), client(4)]
    assert describe_errors(rows) == "2x a; 1x b"


def test_table_has_the_seed_columns():
    s = summarize_cell(CELL, [client(1)], [{"status": "ok"}])
    table = render_table([s])
    for header in ["Operation", "Volume", "Client workers", "Server workers", "Time/client", "Server ok/failed"]:
        assert header in table
    assert "10MiB" in table and "1/0" in table


def test_percentiles_interpolate_between_ranks():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == pytest.approx(4.8)
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_time_spread_columns():
    rows = [client(i, seconds=s) for i, s in enumerate([1.0, 2.0, 3.0, 4.0, 10.0], start=1)]
    s = summarize_cell(replace(CELL, clients=5), rows, [{"status": "ok"}] * 5)
    assert (s["time_per_client_p50_s"], s["time_per_client_max_s"]) == (3.0, 10.0)
    assert s["time_per_client_p95_s"] == pytest.approx(8.8)
    assert "4.000 (3.000/8.800/10.000)" in render_table([s])


def test_repeats_are_combined_into_mean_and_sd():
    one = summarize_cell(CELL, [client(1, seconds=1.0)], [{"status": "ok"}])
    two = summarize_cell(replace(CELL, repeat=2), [client(1, seconds=3.0)], [{"status": "ok"}])
    combined = combine_repeats([one, two])
    assert len(combined) == 1 and combined[0]["repeats"] == 2
    mean, sd = combined[0]["time_per_client_mean_s"]
    assert (mean, sd) == (2.0, pytest.approx(1.4142, abs=1e-4))
    assert combined[0]["clients_ok"] == 2
    assert "2.000 ± 1.414" in render_table([one, two])


def test_indonesian_export_has_the_seed_headers_per_pool():
    thread = summarize_cell(CELL, [client(1)], [{"status": "ok"}])
    process = summarize_cell(replace(CELL, number=9, server_pool="process"), [client(1)], [{"status": "error"}])
    table = render_table([thread, process], lang="id")
    assert "Server pool: thread" in table and "Server pool: process" in table
    for header in SEED_HEADERS_ID:
        assert header in table
    files = seed_csv_tables([thread, process])
    assert sorted(files) == ["laporan-process.csv", "laporan-thread.csv"]
    assert list(files["laporan-process.csv"][0]) == SEED_HEADERS_ID
    assert files["laporan-process.csv"][0]["Jumlah worker server yang sukses dan gagal"] == "0 sukses, 1 gagal"


def test_rows_read_back_from_csv_render_the_same(tmp_path):
    s = summarize_cell(CELL, [client(1)], [{"status": "ok"}])
    path = tmp_path / "summary.csv"
    write_csv(path, SUMMARY_FIELDS, [s])
    assert render_table(read_csv(path)) == render_table([s])
