"""The runner's pure decisions: disk space per cell, rows for clients that never reported."""

from orchestrator.experiments.tcp.cells import TcpCell
from orchestrator.experiments.tcp.experiment import DISK_MARGIN, client_failure, disk_problem, missing_rows
from orchestrator.lab import ExecResult

MiB = 2**20
DOWNLOAD = TcpCell(number=1, op="download", volume=100 * MiB, clients=5, server_workers=1, server_pool="thread")
PLENTY = (100 * 2**30, 200 * 2**30)
BIG_DISK = 100 * 2**30


def test_kept_downloads_need_room_on_the_host_too():
    host = (300 * MiB, BIG_DISK)  # enough for the CSV files, not for 5 x 100 MiB of kept downloads
    assert disk_problem(DOWNLOAD, False, PLENTY, host) is None
    problem = disk_problem(DOWNLOAD, True, PLENTY, host)
    assert problem is not None and "results folder's disk" in problem and "only 300MiB is free" in problem


def test_docker_storage_is_still_checked():
    problem = disk_problem(DOWNLOAD, False, (100 * MiB, BIG_DISK), PLENTY)
    assert problem is not None and "Docker's storage" in problem


def test_enough_room_everywhere_is_no_problem():
    need = 5 * 100 * MiB + DISK_MARGIN
    assert disk_problem(DOWNLOAD, True, PLENTY, (need, BIG_DISK)) is None
    assert disk_problem(DOWNLOAD, True, PLENTY, (need - 1, BIG_DISK)) is not None


def test_a_small_dedicated_volume_keeps_an_eighth_free_not_256_mib():
    upload = TcpCell(number=2, op="upload", volume=12 * MiB, clients=2, server_workers=2, server_pool="thread")
    need = 12 * MiB * 4 + 16 * MiB + 12 * MiB  # temporary copies, stored file, sources; an eighth of 96 MiB
    assert disk_problem(upload, False, (need, 96 * MiB), PLENTY) is None
    assert disk_problem(upload, False, (need - 1, 96 * MiB), PLENTY) is not None


def test_a_client_killed_at_the_backstop_is_a_failure_with_its_cause():
    assert client_failure(ExecResult(124, "", timed_out=True), 720) == "killed after deadline (720s)"
    assert client_failure(ExecResult(137, "", timed_out=True), 720) == "killed after deadline (720s)"
    assert client_failure(ExecResult(None, ""), 720) == "the client container stopped while the stress client ran"
    assert client_failure(ExecResult(1, "Traceback\nMemoryError"), 720) == "stress client exited 1: MemoryError"
    assert client_failure(ExecResult(3, "2/3 uploads"), 720) is None
    assert client_failure(ExecResult(0, ""), 720) is None


def test_one_failed_row_per_client_that_wrote_none():
    written = [{"client": "2", "status": "ok"}]
    rows = missing_rows(DOWNLOAD, written, "killed after deadline (720s)")
    assert [row["client"] for row in rows] == ["1", "3", "4", "5"]
    assert {row["status"] for row in rows} == {"error"}
    assert {row["error"] for row in rows} == {"killed after deadline (720s)"}
    assert {row["op"] for row in rows} == {"download"} and {row["cell"] for row in rows} == {"1"}
