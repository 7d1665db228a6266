from dataclasses import replace

import pytest

from orchestrator.experiments.tcp.cells import TcpCell
from orchestrator.experiments.tcp.rows import (
    LAPORAN_COLUMNS,
    SUMMARY,
    course_volume,
    describe_errors,
    laporan_tables,
    merge_repeats,
    percentile,
    render_table,
    summarize_cell,
)
from orchestrator.tables import TERMINAL_WIDTH

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
    assert s["throughput_per_client_mibps"] == pytest.approx(10 / 1.5, abs=0.01)
    assert s["throughput_per_client_mean_mibps"] == pytest.approx((10 + 5) / 2)  # its own named column
    assert s["aggregate_mibps"] == pytest.approx(20 / 2.0)  # 20 MiB moved in a 2 s window
    assert (s["clients_ok"], s["clients_failed"], s["server_ok"], s["server_failed"]) == (2, 1, 2, 1)
    assert "timeout after 60s" in s["errors"] and "server: Checksum mismatch" in s["errors"]


def test_throughput_per_client_agrees_with_the_time_per_client_when_times_differ():
    # Five clients queued on one worker: 0.2, 0.4, ... 1.0 s. The mean of their rates
    # (2.28x the volume over the mean time here) overstates; volume / mean time does not.
    rows = [client(i, seconds=0.2 * i) for i in range(1, 6)]
    s = summarize_cell(replace(CELL, clients=5), rows, [{"status": "ok"}] * 5)
    volume_mib = 10
    assert s["throughput_per_client_mibps"] == pytest.approx(volume_mib / s["time_per_client_mean_s"], rel=1e-3)
    assert s["throughput_per_client_mean_mibps"] > 1.3 * s["throughput_per_client_mibps"]
    table = render_table([s])
    assert f"{volume_mib / 0.6:.2f}" in table  # 16.67 MiB/s beside 0.600 s


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
    table = render_table([s])
    assert "4.000" in table and "3.000" in table and "8.800" in table and "10.000" in table


def test_repeats_are_combined_into_mean_and_sd():
    one = summarize_cell(CELL, [client(1, seconds=1.0)], [{"status": "ok"}])
    two = summarize_cell(replace(CELL, repeat=2), [client(1, seconds=3.0)], [{"status": "ok"}])
    (combined,) = merge_repeats([one, two])
    assert combined.repeats == 2
    time = combined.spread["time_per_client_mean_s"]
    assert (time.mean, time.sd, time.low, time.high) == (2.0, pytest.approx(1.4142, abs=1e-4), 1.0, 3.0)
    assert combined.values["throughput_per_client_mibps"] == pytest.approx(10 / 2.0)  # volume / mean time
    assert combined.values["clients_ok"] == 2
    assert "2.000 ± 1.414" in render_table([one, two])


def test_peaks_over_repeats_are_their_highest_value_everywhere():
    """One merge for the tables and the report: a peak is the highest over the repeats, never a mean."""
    one = summarize_cell(CELL, [client(1, seconds=1.0)], [{"status": "ok"}], {"server_memory_peak_mib": 100.0})
    two = summarize_cell(replace(CELL, repeat=2), [client(1, seconds=3.0)], [{"status": "ok"}],
                         {"server_memory_peak_mib": 300.0})  # fmt: skip
    (combined,) = merge_repeats([one, two])
    assert combined.values["server_memory_peak_mib"] == 300.0 and combined.values["time_per_client_max_s"] == 3.0
    table = render_table([one, two])
    assert "300.0" in table and "200.0 ±" not in table and "3.000 ±" not in table


def test_laporan_files_hold_numbers_with_units_in_the_headers():
    thread = summarize_cell(CELL, [client(1, seconds=0.5)], [{"status": "ok"}])
    process = summarize_cell(replace(CELL, number=9, server_pool="process"), [client(1)], [{"status": "error"}])
    files = laporan_tables([thread, process])
    assert sorted(files) == ["laporan-process.csv", "laporan-thread.csv"]
    (row,) = files["laporan-thread.csv"]
    assert list(row) == list(LAPORAN_COLUMNS)
    assert row["Volume"] == "10 MB" and row["Volume (byte)"] == 10 * 2**20
    assert row["Waktu total per client (s)"] == 0.5 and row["Throughput per client (MiB/s)"] == 20.0
    (bad,) = files["laporan-process.csv"]
    assert (bad["Jumlah worker server yang sukses"], bad["Jumlah worker server yang gagal"]) == (0, 1)
    table = render_table([thread, process], lang="id")
    assert "laporan-thread.csv" in table and "laporan-process.csv" in table and "Operasi" in table


def test_laporan_with_repeats_adds_their_spread():
    one = summarize_cell(CELL, [client(1, seconds=1.0)], [{"status": "ok"}])
    two = summarize_cell(replace(CELL, repeat=2), [client(1, seconds=3.0)], [{"status": "ok"}])
    (row,) = laporan_tables([one, two])["laporan-thread.csv"]
    assert row["Jumlah ulangan"] == 2 and row["Waktu total per client (s)"] == 2.0
    assert (row["Waktu total per client, min (s)"], row["Waktu total per client, maks (s)"]) == (1.0, 3.0)


def test_course_volumes():
    assert [course_volume(v) for v in (10 * 2**20, 100 * 2**20, 512 * 1024, 1000)] == [
        "10 MB", "100 MB", "512 KB", "1000 B"
    ]  # fmt: skip


def test_terminal_tables_fit_120_columns_even_with_repeats():
    rows = []
    for number in range(1, 33):
        for repeat in (1, 2):
            cell = replace(CELL, number=number, repeat=repeat, clients=50, server_workers=50, server_pool="process")
            clients = [client(i, seconds=12.3456 + i + repeat) for i in range(1, 4)]
            rows.append(summarize_cell(cell, clients, [{"status": "ok"}] * 3, {"server_cpu_percent": 150.0}))
            rows[-1]["server_peak_rss_mib"] = 1234.5
            rows[-1]["client_peak_rss_mib"] = 2345.6
    text = render_table(rows, tablefmt="simple", width=TERMINAL_WIDTH)
    assert max(len(line) for line in text.splitlines()) <= TERMINAL_WIDTH
    for header in ("Operation", "Volume", "Time/client", "Throughput/client", "Aggregate", "Server RSS"):
        assert header in text.replace("\n", " ")
    assert "\\_" not in text and "server_pool" not in text
    laporan = render_table(rows, tablefmt="simple", lang="id", width=TERMINAL_WIDTH)
    assert max(len(line) for line in laporan.splitlines()) <= TERMINAL_WIDTH


def test_rows_read_back_from_csv_render_the_same(tmp_path):
    s = summarize_cell(CELL, [client(1)], [{"status": "ok"}])
    SUMMARY.write(tmp_path, [s])
    assert SUMMARY.read(tmp_path) == [{**s, "cpu_problems": ""}]  # typed as written; a missing text is empty
    assert render_table(SUMMARY.read(tmp_path)) == render_table([s])
