"""The runner's pure decisions: disk space per cell, rows for clients that never reported."""

from orchestrator.matrix import TcpCell
from orchestrator.runner import DISK_MARGIN, disk_problem

MiB = 2**20
DOWNLOAD = TcpCell(number=1, op="download", volume=100 * MiB, clients=5, server_workers=1, server_pool="thread")
PLENTY = 100 * 2**30


def test_kept_downloads_need_room_on_the_host_too():
    host_free = 300 * MiB  # enough for the CSV files, not for 5 x 100 MiB of kept downloads
    assert disk_problem(DOWNLOAD, False, PLENTY, host_free) is None
    problem = disk_problem(DOWNLOAD, True, PLENTY, host_free)
    assert problem is not None and "results folder's disk" in problem and "only 300MiB is free" in problem


def test_docker_storage_is_still_checked():
    problem = disk_problem(DOWNLOAD, False, 100 * MiB, PLENTY)
    assert problem is not None and "Docker's storage" in problem


def test_enough_room_everywhere_is_no_problem():
    need = 5 * 100 * MiB + DISK_MARGIN
    assert disk_problem(DOWNLOAD, True, PLENTY, need) is None
    assert disk_problem(DOWNLOAD, True, PLENTY, need - 1) is not None
