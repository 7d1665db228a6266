"""The CPU arithmetic of the telemetry (pure: counter readings in, figures or a reason out)."""

import pytest

from orchestrator.experiments.tcp.cells import TcpCell
from orchestrator.experiments.tcp.rows import SUMMARY_FIELDS, summarize_cell
from orchestrator.lab.telemetry import CpuUsage, Samples, counter_ns, cpu_usage, figures


def test_counter_readings_of_both_cgroup_versions_are_nanoseconds():
    assert counter_ns("205228948") == 205228948  # v1 cpuacct.usage: nanoseconds
    assert counter_ns("usage_usec 205228\n") == 205228000  # v2 cpu.stat's first line: microseconds
    assert counter_ns("0") == 0


@pytest.mark.parametrize("line", ["", "\n", "sh: can't open", "usage_usec", "user_usec 12", "-5", "12.5", "1 2"])
def test_anything_else_is_no_reading(line):
    assert counter_ns(line) is None


def test_cpu_seconds_and_mean_percent_of_one_core():
    usage = cpu_usage(1_000_000_000, 1_250_000_000, wall_seconds=0.5)
    assert usage.seconds == pytest.approx(0.25)
    assert usage.percent == pytest.approx(50.0)
    assert usage.problem == ""
    both_cores = cpu_usage(0, 3_000_000_000, wall_seconds=1.5)
    assert both_cores.percent == pytest.approx(200.0)  # two cores busy: 200 %


def test_an_idle_container_used_no_cpu():
    assert cpu_usage(7, 7, wall_seconds=0.1) == CpuUsage(0.0, 0.0)


def test_a_counter_that_went_backwards_gives_no_figure_and_says_why():
    usage = cpu_usage(900_000_000, 1_000, wall_seconds=0.5)
    assert usage.seconds is None and usage.percent is None
    assert "went backwards" in usage.problem


@pytest.mark.parametrize(("start", "end", "where"), [(None, 5, "start"), (5, None, "end"), (None, None, "start")])
def test_a_missing_reading_gives_no_figure_and_says_which(start, end, where):
    usage = cpu_usage(start, end, wall_seconds=1.0)
    assert usage.seconds is None and usage.percent is None
    assert usage.problem == f"CPU counter not read at the {where}"


def test_no_wall_time_gives_seconds_but_no_percent():
    usage = cpu_usage(0, 1_000_000, wall_seconds=0.0)
    assert usage.seconds == pytest.approx(0.001) and usage.percent is None
    assert usage.problem


def test_figures_are_columns_per_role_with_the_reasons_for_missing_ones():
    server = Samples(memory=[40 * 2**20, 41 * 2**20], cpu=cpu_usage(0, 30_000_123, wall_seconds=0.2))
    client = Samples(cpu=cpu_usage(10, 5, wall_seconds=0.2))
    columns = figures({"server": server, "client": client})
    assert columns == {
        "server_cpu_seconds": 0.03, "server_cpu_percent": 15.0, "server_memory_peak_mib": 41.0,
        "client_cpu_seconds": None, "client_cpu_percent": None,
        "client_memory_peak_mib": None,  # no memory sample: left empty, not guessed
        "cpu_problems": "client: CPU counter went backwards (the container restarted during the cell)",
    }  # fmt: skip


def test_summary_row_carries_the_figures():
    cell = TcpCell(number=1, op="upload", volume=2**20, clients=1, server_workers=1, server_pool="thread")
    client_row = {"client": "1", "status": "ok", "seconds": "0.1", "start": "1", "end": "1.1", "bytes": "1048576",
                  "throughput_bps": "10485760"}  # fmt: skip
    measured = {"server": Samples(cpu=cpu_usage(0, 30_000_000, 0.2)), "client": Samples(cpu=cpu_usage(None, 5, 0.2))}
    row = summarize_cell(cell, [client_row], [{"status": "ok"}], figures(measured))
    assert (row["server_cpu_seconds"], row["server_cpu_percent"]) == (0.03, 15.0)
    assert row["client_cpu_seconds"] is None
    assert row["cpu_problems"] == "client: CPU counter not read at the start"
    assert set(row) == set(SUMMARY_FIELDS)
