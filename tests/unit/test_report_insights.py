"""The "what this shows" claims: computed from the figures given, never fixed text."""

from dataclasses import replace

import pytest

from orchestrator.experiments.tcp.rows import SUMMARY
from orchestrator.report.insights import (
    agreement_claims,
    failure_claims,
    fit_line,
    original_claims,
    pool_claims,
    scaling_claims,
    scaling_series,
    seconds,
    udp_claims,
    worker_claims,
)
from orchestrator.report.model import Cell, ReportError, parse_cells

MIB = 2**20
X = "\N{MULTIPLICATION SIGN}"


def cell(number, clients, workers, pool="thread", op="upload", time=1.0, throughput=10.0, **extra):
    return Cell(number, op, 10 * MIB, clients, workers, pool, time_mean=time, throughput=throughput,
                clients_ok=clients, server_ok=clients, **extra)  # fmt: skip


def test_fit_line():
    a, b, r2 = fit_line([1, 5, 50], [0.5, 2.5, 25.0])
    assert (a, b, r2) == pytest.approx((0.0, 0.5, 1.0))


def test_linear_growth_is_found_and_measured():
    cells = [cell(1, 1, 1, time=0.6), cell(2, 5, 1, time=3.0), cell(3, 50, 1, time=30.0), cell(4, 50, 5, time=6.0)]
    series = scaling_series(cells)
    assert len(series) == 1 and series[0].linear
    text = scaling_claims(series)[0]
    assert text.startswith("With 1 server worker, mean time per client grows")
    assert "1 are close to linear" not in text and "1 is close to linear" in text
    assert "from 0.600 s at 1 client to 30.0 s at 50 clients" in text
    assert f"50.0{X} for 50.0{X} the clients" in text


def test_not_linear_is_not_called_linear():
    cells = [cell(1, 1, 1, time=1.0), cell(2, 5, 1, time=1.1), cell(3, 50, 1, time=1.2), cell(4, 10, 1, time=9.0)]
    series = scaling_series(cells)
    assert not series[0].linear
    assert "0 are close to linear" in scaling_claims(series)[0]


def test_pool_claim_names_the_winner_and_the_factor():
    cells = [
        cell(1, 50, 1, "thread", throughput=1.0),
        cell(2, 50, 1, "process", throughput=3.0),
        cell(3, 50, 5, "thread", throughput=2.0),
        cell(4, 50, 5, "process", throughput=6.0),
    ]
    (claim,) = pool_claims(cells)
    assert claim.startswith(f"At 50 clients the process pool beats the thread pool for uploads by 3.00{X}")
    assert "over 2 cells" in claim
    swapped = [replace(c, server_pool="process" if c.server_pool == "thread" else "thread") for c in cells]
    assert pool_claims(swapped)[0].startswith(
        f"At 50 clients the thread pool beats the process pool for uploads by 3.00{X}"
    )


def test_pool_claim_says_when_the_winner_does_not_win_everywhere():
    cells = [
        cell(1, 50, 1, "thread", throughput=1.0),
        cell(2, 50, 1, "process", throughput=3.0),
        cell(3, 50, 5, "thread", throughput=2.0),
        cell(4, 50, 5, "process", throughput=1.5),
    ]
    (claim,) = pool_claims(cells)
    assert f"process pool beats the thread pool for uploads by 1.50{X} on average but not in every cell" in claim
    assert f"from 0.75{X} to 3.00{X}" in claim


def test_worker_claim():
    cells = [cell(1, 50, 1, time=10.0), cell(2, 50, 5, time=2.5), cell(3, 1, 1, time=0.5)]
    (claim,) = worker_claims(cells)
    assert f"5 server workers instead of 1 make each upload 4.00{X} faster" in claim


def test_no_claim_without_the_cells_to_compare():
    only_thread = [cell(1, 50, 1), cell(2, 50, 5)]
    assert pool_claims(only_thread) == []
    assert worker_claims([cell(1, 50, 1)]) == []
    assert scaling_claims(scaling_series([cell(1, 50, 1)])) == []


def test_failure_claim_finds_what_failing_cells_share():
    cells = [
        cell(1, 1, 1),
        replace(cell(2, 50, 1), clients_ok=30, clients_failed=20, errors=("20x timeout after 60s",)),
        replace(cell(3, 50, 1, pool="process"), clients_ok=45, clients_failed=5, errors=("5x timeout after 60s",)),
        cell(4, 50, 5),
    ]
    (claim,) = failure_claims(cells)
    assert claim.startswith("25 of 151 client transfers failed, in 2 of 4 cells")
    assert "every failing cell has 50 clients and 1 server worker" in claim
    assert "“timeout after 60s” (25 times)" in claim
    assert failure_claims([cell(1, 5, 1)])[0].startswith("All 5 client transfers")


def test_agreement_claim_lists_disagreeing_cells():
    cells = [cell(1, 5, 1), replace(cell(2, 5, 1), server_ok=4)]
    assert "cell (clients vs server) 2 (5 vs 4)" in agreement_claims(cells)[0]
    assert "in all 1 cell" in agreement_claims(cells[:1])[0]


def test_udp_claims_against_the_course_order():
    rows = [
        {"model": "thread", "payload": "1", "receiver": "a", "run_seconds_mean": "0.3", "lost": "0", "intact": "1",
         "runs": "1"},
        {"model": "process", "payload": "1", "receiver": "a", "run_seconds_mean": "0.6", "lost": "2", "intact": "0",
         "runs": "1"},
    ]  # fmt: skip
    claims = udp_claims(rows, {"process": 0.885, "thread": 0.621})
    assert "the fastest model was thread (0.300 s" in claims[0] and f"2.00{X}" in claims[0]
    assert "thread, process; this run ranks them thread, process: the same order" in claims[1]
    assert claims[2] == "Receivers got the file intact in 1 of 2 receptions; 2 datagrams lost in all."


def test_original_claim():
    (claim,) = original_claims([2.0, 4.0, 8.0], excluded=3)
    assert "in the 3 cells where both have a measured figure" in claim
    assert f"4.00{X} the original's (median" in claim
    assert "3 more cells whose original figure is not a measurement (T, Z, M) are left out" in claim
    assert original_claims([], 5) == []


def test_seconds_formatting():
    assert [seconds(x) for x in (0.0042, 0.5, 2.5, 25.0, 250.0)] == ["4.20 ms", "0.500 s", "2.50 s", "25.0 s", "250 s"]


def test_parse_cells_merges_repeats():
    base = {"number": "3", "operation": "upload", "volume_bytes": "1048576", "client_workers": "5",
            "server_workers": "1", "server_pool": "thread", "clients_ok": "5", "clients_failed": "0",
            "server_ok": "5", "server_failed": "0", "time_per_client_max_s": "2"}  # fmt: skip
    rows = [
        {**base, "cell_id": "a", "time_per_client_mean_s": "1.0", "throughput_per_client_mean_mibps": "10"},
        {**base, "cell_id": "b", "time_per_client_mean_s": "2.0", "throughput_per_client_mean_mibps": "",
         "clients_ok": "4", "clients_failed": "1", "time_per_client_max_s": "3"},
    ]  # fmt: skip
    (merged,) = parse_cells([SUMMARY.decode(row, f"line {n}") for n, row in enumerate(rows, start=2)])
    assert merged.repeats == 2 and merged.cell_ids == ("a", "b")
    assert merged.time_mean == 1.5 and merged.time_max == 3.0
    assert merged.throughput == pytest.approx(1 / 1.5)  # volume / mean time, whatever the stored rates say
    assert merged.rate_mean == 10.0
    assert merged.range_of("time_mean") == (1.0, 2.0) and merged.range_of("server_cpu") is None
    assert (merged.clients_ok, merged.clients_failed) == (9, 1)
    assert merged.server_cpu is None  # a column the run did not have
    with pytest.raises(ReportError, match="line 2: column 'operation' is missing"):
        SUMMARY.decode({"number": "1"}, "line 2")
    with pytest.raises(ReportError, match="'time_per_client_mean_s' holds 'fast', not a number"):
        SUMMARY.decode({**base, "time_per_client_mean_s": "fast"}, "line 3")
