import pytest

from orchestrator.matrix import TcpCell
from orchestrator.summary import describe_errors, render_table, summarize_cell

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
